"""The operator commands: a layer above the infrastructure (`stacks`) and the runtime (`marketplace_saas`).

One module per command (`status`, `export`, `record_usage`, `destroy_disabled`), what they share in `target`
(where the listings run: the deployed account or a running `--local`), and `cli`, the command line
`./deploy-marketplace.sh` runs. They import `stacks` for the config and the runtime package of `lambda/` by
its own name; set-up puts both on the venv's import path.
"""

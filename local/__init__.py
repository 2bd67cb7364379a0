"""Local mode: the AWS Marketplace emulator, the local gateway and the runner behind --local."""

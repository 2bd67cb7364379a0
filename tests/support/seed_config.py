"""The config block of the seed document (../shared/seeds/000_3fa17650ade166ae.txt), exactly as written:
no dimensions, no pricing model. It must validate, synthesize and run locally with no edits."""

SEED_CONFIG = """\
{
  "marketplaceListings": {
    "ai-skills": {
      "name": "Codio AI Skills Training",
      "description": "Build job-ready AI and machine learning skills...",
      "productCode": "CODIO_AI_SKILLS_2024",
      "path": "ai-skills",
      "enabled": true
    },
    "data-analytics": {
      "name": "Codio Data Analytics Training", 
      "description": "Master data science and analytics...",
      "productCode": "CODIO_DATA_ANALYTICS_2024",
      "path": "data-analytics",
      "enabled": true
    }
  },
  "deploymentSettings": {
    "region": "us-east-1",
    "environment": "production",
    "retainResources": true
  }
}
"""

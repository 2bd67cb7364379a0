"""Runtime code shared by a listing's Lambda functions: domain logic, data access and models."""

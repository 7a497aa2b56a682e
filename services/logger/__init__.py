"""The logger: writes every result record published by the workers to S3, one JSON object each."""

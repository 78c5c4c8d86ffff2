"""Where models live: S3 or MinIO objects, the MinIO container, and on Azure the blob mirror that keeps MinIO's
models.
"""

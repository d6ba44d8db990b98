"""R2: buckets behind `[[r2_buckets]]` bindings; bodies as files, metadata in SQLite."""

from .bucket import R2Bucket, R2MultipartUpload
from .objects import R2Checksums, R2Object, R2ObjectBody
from .service import R2Service
from .storage import R2Storage

__all__ = ["R2Service", "R2Bucket", "R2MultipartUpload", "R2Object", "R2ObjectBody", "R2Checksums", "R2Storage"]

# One private bucket for everything. Layout (DESIGN.md): projects/<project>/{blobs,deployments,aliases,cache}/.
resource "aws_s3_bucket" "storage" {
  bucket = var.bucket_name
  tags   = local.tags
}

resource "aws_s3_bucket_public_access_block" "storage" {
  bucket                  = aws_s3_bucket.storage.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# ACLs off: access is decided by IAM policies alone.
resource "aws_s3_bucket_ownership_controls" "storage" {
  bucket = aws_s3_bucket.storage.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "storage" {
  bucket = aws_s3_bucket.storage.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

# Versioning keeps overwritten aliases and deleted objects for noncurrent_version_expiration_days, so a bad
# promote or a mistaken delete can be undone from S3 itself.
resource "aws_s3_bucket_versioning" "storage" {
  bucket = aws_s3_bucket.storage.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "storage" {
  bucket     = aws_s3_bucket.storage.id
  depends_on = [aws_s3_bucket_versioning.storage]

  # Build caches (projects/<project>/cache/) are disposable. S3 lifecycle filters match prefixes, not
  # projects/*/cache/, so each known project gets its own rule...
  dynamic "rule" {
    for_each = local.cache_projects
    content {
      id     = "build-cache-${rule.value}"
      status = "Enabled"
      filter {
        prefix = "projects/${rule.value}/cache/"
      }
      expiration {
        days = var.cache_expiration_days
      }
      noncurrent_version_expiration {
        noncurrent_days = 1
      }
    }
  }

  # ...and cache objects written with the tag ferry-cache=true expire in every project, whatever its name.
  rule {
    id     = "build-cache-tagged"
    status = "Enabled"
    filter {
      tag {
        key   = "ferry-cache"
        value = "true"
      }
    }
    expiration {
      days = var.cache_expiration_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  rule {
    id     = "old-versions"
    status = "Enabled"
    filter {}
    expiration {
      expired_object_delete_marker = true
    }
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

# TLS only, for every principal.
resource "aws_s3_bucket_policy" "storage" {
  bucket     = aws_s3_bucket.storage.id
  depends_on = [aws_s3_bucket_public_access_block.storage]
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.storage.arn, "${aws_s3_bucket.storage.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
}

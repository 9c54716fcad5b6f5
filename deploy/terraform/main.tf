data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  region    = data.aws_region.current.region
  partition = data.aws_partition.current.partition
  account   = data.aws_caller_identity.current.account_id

  # The one storage URL every part reads (DESIGN.md, "Storage"); the bucket root holds projects/.
  storage_url = "s3://${var.bucket_name}?region=${local.region}"

  # Projects whose build caches expire by prefix (S3 lifecycle filters take no wildcards).
  cache_projects = toset(concat(keys(var.github_repositories), var.projects))

  tags = merge({ "app" = var.name }, var.tags)
}

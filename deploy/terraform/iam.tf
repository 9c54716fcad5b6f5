# Who may touch what (deploy/README.md, "Least privilege"):
#   execution role   ECS agent: pulls the image, writes logs, reads the app's secrets. Never seen by containers.
#   app role         the whole bucket, ECS RunTask/StopTask/DescribeTasks on builds, and AssumeRole of the
#                    build role with a session policy. (The database is reached through the network.)
#   proxy role       reads projects/ (GetObject); records used sign-in tokens (projects/*/handoffs/*).
#   build role       the upper bound of any build's upload rights: projects/*. The app assumes it per build
#                    with a session policy naming projects/<project>/..., and the effective rights are the
#                    intersection, so one build's credentials reach one project alone.
#   build tasks      have NO task role: untrusted build code could read a task role's credentials from the
#                    container credentials endpoint, so the task holds nothing beyond its scoped session.
#
# Every role that reads objects also has s3:ListBucket on the bucket, unconditioned: S3 answers a missing key
# with 404 only to callers allowed to list, and Ferry reads missing keys on purpose (a first build's cache,
# a fresh deployment id). A prefix condition on ListBucket would turn those 404s into 403s. Listing shows key
# names only (project names, deployment ids, content hashes), never contents; reads and writes stay scoped.

locals {
  bucket_arn  = aws_s3_bucket.storage.arn
  objects_arn = "${aws_s3_bucket.storage.arn}/projects/*"
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_iam_role_policy" "execution_secrets" {
  name = "secrets"
  role = aws_iam_role.execution.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = "secretsmanager:GetSecretValue"
      Resource = [var.github_app_secret_arn, aws_db_instance.this.master_user_secret[0].secret_arn]
    }]
  })
}

resource "aws_iam_role" "app" {
  name               = "${var.name}-app"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "app" {
  statement {
    sid       = "Storage"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = [local.objects_arn]
  }
  statement {
    sid       = "StorageList"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]
  }
  statement {
    sid       = "RunBuilds"
    actions   = ["ecs:RunTask"]
    resources = ["arn:${local.partition}:ecs:${local.region}:${local.account}:task-definition/${aws_ecs_task_definition.build.family}:*"]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [aws_ecs_cluster.this.arn]
    }
  }
  statement {
    sid       = "TrackBuilds"
    actions   = ["ecs:DescribeTasks", "ecs:StopTask"]
    resources = ["arn:${local.partition}:ecs:${local.region}:${local.account}:task/${aws_ecs_cluster.this.name}/*"]
  }
  statement {
    sid       = "PassBuildExecutionRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.execution.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
  statement {
    sid       = "ScopedBuildCredentials"
    actions   = ["sts:AssumeRole", "sts:SetSourceIdentity"]
    resources = [aws_iam_role.build.arn]
  }
}

resource "aws_iam_role_policy" "app" {
  name   = "ferry-app"
  role   = aws_iam_role.app.id
  policy = data.aws_iam_policy_document.app.json
}

resource "aws_iam_role" "proxy" {
  name               = "${var.name}-proxy"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "proxy" {
  name = "ferry-proxy"
  role = aws_iam_role.proxy.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Sid = "Read", Effect = "Allow", Action = "s3:GetObject", Resource = local.objects_arn },
      # Protected previews: a used sign-in hand-off token is recorded once (create-only), so it opens a site once.
      {
        Sid      = "RecordUsedSignIns"
        Effect   = "Allow"
        Action   = "s3:PutObject"
        Resource = "${aws_s3_bucket.storage.arn}/projects/*/handoffs/*"
      },
      {
        Sid      = "MissingKeysAre404"
        Effect   = "Allow"
        Action   = "s3:ListBucket"
        Resource = local.bucket_arn
      },
    ]
  })
}

# Trusted by the app role alone. Its policy is the ceiling; each build's session policy is the real scope.
resource "aws_iam_role" "build" {
  name                 = "${var.name}-build"
  max_session_duration = max(3600, min(43200, var.build_timeout_seconds + 900))
  tags                 = local.tags
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { AWS = aws_iam_role.app.arn }
      Action    = ["sts:AssumeRole", "sts:SetSourceIdentity"]
    }]
  })
}

resource "aws_iam_role_policy" "build" {
  name = "ferry-build-ceiling"
  role = aws_iam_role.build.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ProjectObjects"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
        Resource = local.objects_arn
      },
      {
        Sid      = "ProjectList"
        Effect   = "Allow"
        Action   = "s3:ListBucket"
        Resource = local.bucket_arn
      },
    ]
  })
}

# The GitHub Action (`uses: ferryhq/ferry@v1` with role-to-assume) gets credentials through GitHub OIDC: one
# role per project, assumable only by workflows of that project's repository, reaching projects/<project>/
# alone. The subjects cover branch pushes, pull requests and jobs with an environment (a job with
# `environment:` has the subject repo:OWNER/REPO:environment:NAME instead of its ref).

locals {
  github_oidc_url          = "token.actions.githubusercontent.com"
  github_oidc_provider_arn = var.create_github_oidc_provider ? aws_iam_openid_connect_provider.github[0].arn : var.github_oidc_provider_arn
}

resource "aws_iam_openid_connect_provider" "github" {
  count           = var.create_github_oidc_provider && length(var.github_repositories) > 0 ? 1 : 0
  url             = "https://${local.github_oidc_url}"
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = var.github_oidc_thumbprints
  tags            = local.tags
}

resource "aws_iam_role" "github" {
  for_each = var.github_repositories
  name     = "${var.name}-gh-${each.key}"
  tags     = merge(local.tags, { "ferry-project" = each.key })
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Federated = local.github_oidc_provider_arn }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = { "${local.github_oidc_url}:aud" = "sts.amazonaws.com" }
        StringLike = {
          "${local.github_oidc_url}:sub" = [
            "repo:${each.value}:ref:refs/heads/*",
            "repo:${each.value}:pull_request",
            "repo:${each.value}:environment:*",
          ]
        }
      }
    }]
  })
}

resource "aws_iam_role_policy" "github" {
  for_each = var.github_repositories
  name     = "ferry-project-${each.key}"
  role     = aws_iam_role.github[each.key].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ProjectObjects"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
        Resource = "${local.bucket_arn}/projects/${each.key}/*"
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

# A complete installation: D = preview.example.com, DNS in Route 53, two Action projects.
provider "aws" {
  region = "eu-west-1"
}

module "ferry" {
  source = "../.."

  domain             = "preview.example.com"
  route53_zone_id    = "Z0123456789EXAMPLE"
  bucket_name        = "example-ferry-sites"
  vpc_id             = "vpc-0123456789abcdef0"
  public_subnet_ids  = ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]
  private_subnet_ids = ["subnet-0bbbbbbbbbbbbbbb1", "subnet-0bbbbbbbbbbbbbbb2"]

  image                 = "ghcr.io/ferryhq/ferry:v1.0.0"
  github_app_id         = "123456"
  github_app_secret_arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ferry-github-app-AbCdEf"

  github_repositories = {
    web  = "example/web"
    docs = "example/docs"
  }
}

output "github_actions_role_arns" {
  value = module.ferry.github_actions_role_arns
}

output "storage_url" {
  value = module.ferry.storage_url
}

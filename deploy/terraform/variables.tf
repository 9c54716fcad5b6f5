variable "name" {
  description = "Prefix for every resource name, so that two Ferry installations can share an account."
  type        = string
  default     = "ferry"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.name))
    error_message = "name must be 1-20 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "domain" {
  description = "The domain D: the app and dashboard answer on D, every deployment on <name>--<project>.D and <project>.D."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.domain))
    error_message = "domain must be a lowercase DNS name such as preview.example.com."
  }
}

variable "bucket_name" {
  description = "Name of the S3 bucket that holds every project's blobs, manifests, aliases and build caches."
  type        = string
}

variable "vpc_id" {
  description = "The VPC that the load balancer, services, build tasks and database run in."
  type        = string
}

variable "public_subnet_ids" {
  description = "Subnets for the internet-facing load balancer (at least two availability zones)."
  type        = list(string)
}

variable "private_subnet_ids" {
  description = "Subnets for the app, the proxy, build tasks and the database (at least two availability zones). They need a route to the internet (a NAT gateway) for GitHub, the npm registry and the image registry, or set assign_public_ip."
  type        = list(string)
}

variable "assign_public_ip" {
  description = "Give tasks public IPs, for private_subnet_ids that are in fact public subnets without a NAT gateway."
  type        = bool
  default     = false
}

variable "certificate_arn" {
  description = "ARN of an ACM certificate covering D and *.D. When empty, the module requests one with DNS validation."
  type        = string
  default     = ""
}

variable "route53_zone_id" {
  description = "Route 53 hosted zone for D. When set, the module creates the certificate validation records and the D and *.D alias records; otherwise create them from the outputs."
  type        = string
  default     = ""
}

variable "image" {
  description = "The Ferry image (stage server of the Dockerfile), pinned by version or digest, for example ghcr.io/ferryhq/ferry:v1.2.3."
  type        = string

  validation {
    condition     = !can(regex(":latest$", var.image))
    error_message = "image must be pinned by version or digest, not :latest: every replica and build must run the same Ferry."
  }
}

variable "github_app_id" {
  description = "The GitHub App's id."
  type        = string
}

variable "github_app_secret_arn" {
  description = "Secrets Manager secret holding the App's secrets as JSON keys webhook_secret and private_key (the PEM)."
  type        = string
}

variable "github_api_url" {
  description = "GitHub's REST API URL; change it for GitHub Enterprise Server."
  type        = string
  default     = "https://api.github.com"
}

variable "github_repositories" {
  description = "Projects deployed by the GitHub Action, as project name => \"OWNER/REPO\". Each gets an IAM role that the repository's workflows assume with GitHub OIDC and that reaches projects/<project>/ alone."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for project, repo in var.github_repositories :
      can(regex("^[a-z0-9]+(-[a-z0-9]+)*$", project)) && length(project) <= 40 && can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", repo))
    ])
    error_message = "github_repositories maps project names (lowercase letters, digits, single hyphens, at most 40) to OWNER/REPO."
  }
}

variable "create_github_oidc_provider" {
  description = "Create the account's GitHub OIDC provider. An account has at most one per URL: set false and github_oidc_provider_arn when it exists already."
  type        = bool
  default     = true
}

variable "github_oidc_provider_arn" {
  description = "ARN of an existing GitHub OIDC provider, used when create_github_oidc_provider is false."
  type        = string
  default     = ""
}

variable "github_oidc_thumbprints" {
  description = "Thumbprints for the GitHub OIDC provider. AWS verifies GitHub through its trusted CAs and ignores them, but the API still stores one."
  type        = list(string)
  default     = ["6938fd4d98bab03faadb97b34396831e3780aea1"]
}

variable "projects" {
  description = "Further project names (besides the keys of github_repositories) whose build caches get a lifecycle rule by prefix."
  type        = list(string)
  default     = []
}

variable "cache_expiration_days" {
  description = "Days after which a build cache object expires. A build that misses its cache only runs a slower install."
  type        = number
  default     = 14
}

variable "noncurrent_version_expiration_days" {
  description = "Days that overwritten or deleted objects (old alias versions, for example) are kept, for recovery."
  type        = number
  default     = 30
}

variable "db_instance_class" {
  description = "RDS instance class for PostgreSQL."
  type        = string
  default     = "db.t4g.small"
}

variable "db_allocated_storage" {
  description = "Initial database storage in GiB; storage autoscaling may grow it to db_max_allocated_storage."
  type        = number
  default     = 20
}

variable "db_max_allocated_storage" {
  description = "Upper bound in GiB for storage autoscaling."
  type        = number
  default     = 100
}

variable "db_engine_version" {
  description = "PostgreSQL major version."
  type        = string
  default     = "17"
}

variable "db_multi_az" {
  description = "Run a standby in a second availability zone."
  type        = bool
  default     = true
}

variable "db_deletion_protection" {
  description = "Refuse to delete the database (set false before terraform destroy)."
  type        = bool
  default     = true
}

variable "app_count" {
  description = "Replicas of ferry app. River coordinates their workers through PostgreSQL."
  type        = number
  default     = 2
}

variable "app_cpu" {
  description = "CPU units of one app task (1024 = one vCPU)."
  type        = number
  default     = 512
}

variable "app_memory" {
  description = "Memory of one app task in MiB."
  type        = number
  default     = 1024
}

variable "app_health_check_path" {
  description = "Path the load balancer checks on the app."
  type        = string
  default     = "/healthz"
}

variable "proxy_count" {
  description = "Minimum replicas of ferry proxy; autoscaling on CPU adds more up to proxy_max_count."
  type        = number
  default     = 2
}

variable "proxy_max_count" {
  description = "Maximum replicas of ferry proxy."
  type        = number
  default     = 10
}

variable "proxy_cpu" {
  description = "CPU units of one proxy task."
  type        = number
  default     = 1024
}

variable "proxy_memory" {
  description = "Memory of one proxy task in MiB; a quarter of it goes to the in-memory file cache."
  type        = number
  default     = 2048
}

variable "build_cpu" {
  description = "CPU units of one build task (the default; the app may override per build)."
  type        = number
  default     = 2048
}

variable "build_memory" {
  description = "Memory of one build task in MiB."
  type        = number
  default     = 4096
}

variable "build_ephemeral_storage_gib" {
  description = "Disk of one build task in GiB (21-200): the clone, node_modules and the output."
  type        = number
  default     = 40
}

variable "build_timeout_seconds" {
  description = "Longest build; the build upload credentials live this long plus a margin (at most 12 hours)."
  type        = number
  default     = 1800
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the app's, the proxy's and the builds' logs."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

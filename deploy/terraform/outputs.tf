output "storage_url" {
  description = "The --storage URL for every part, and the Action's storage input."
  value       = local.storage_url
}

output "bucket_name" {
  description = "The bucket holding projects/."
  value       = aws_s3_bucket.storage.bucket
}

output "load_balancer_dns_name" {
  description = "Point D and *.D here (CNAME, or an alias A record in zone load_balancer_zone_id) when route53_zone_id is empty."
  value       = aws_lb.this.dns_name
}

output "load_balancer_zone_id" {
  description = "The load balancer's hosted zone, for alias records."
  value       = aws_lb.this.zone_id
}

output "certificate_validation_records" {
  description = "DNS records that validate the requested certificate, when route53_zone_id is empty."
  value = local.create_certificate ? distinct([
    for o in aws_acm_certificate.this[0].domain_validation_options : {
      name  = o.resource_record_name
      type  = o.resource_record_type
      value = o.resource_record_value
    }
  ]) : []
}

output "cluster_arn" {
  description = "The ECS cluster of the services and build tasks."
  value       = aws_ecs_cluster.this.arn
}

output "build_task_definition_family" {
  description = "Task definition family the ECS builder runs (--ecs-task-definition)."
  value       = aws_ecs_task_definition.build.family
}

output "build_security_group_id" {
  description = "Security group of build tasks (no inbound, HTTPS out)."
  value       = aws_security_group.build.id
}

output "build_subnet_ids" {
  description = "Subnets of build tasks."
  value       = var.private_subnet_ids
}

output "build_role_arn" {
  description = "Role the app assumes per build with a session policy scoped to projects/<project>/."
  value       = aws_iam_role.build.arn
}

output "app_role_arn" {
  description = "Task role of ferry app."
  value       = aws_iam_role.app.arn
}

output "proxy_role_arn" {
  description = "Task role of ferry proxy."
  value       = aws_iam_role.proxy.arn
}

output "github_actions_role_arns" {
  description = "Per project, the role-to-assume for `uses: ferryhq/ferry@v1`."
  value       = { for project, role in aws_iam_role.github : project => role.arn }
}

output "database_endpoint" {
  description = "PostgreSQL host:port."
  value       = aws_db_instance.this.endpoint
}

output "database_secret_arn" {
  description = "Secrets Manager secret with the database user's password (key password), rotated by RDS."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "migrate_command" {
  description = "Runs `ferry migrate` once as a one-off task of the app's definition; run it before rolling out a new image."
  value = join(" ", [
    "aws ecs run-task --cluster ${aws_ecs_cluster.this.name} --launch-type FARGATE",
    "--task-definition ${aws_ecs_task_definition.app.family}",
    "--network-configuration 'awsvpcConfiguration={subnets=[${local.subnets_csv}],securityGroups=[${aws_security_group.app.id}],assignPublicIp=${var.assign_public_ip ? "ENABLED" : "DISABLED"}}'",
    "--overrides '{\"containerOverrides\":[{\"name\":\"app\",\"command\":[\"migrate\"]}]}'",
  ])
}

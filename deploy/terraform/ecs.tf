resource "aws_ecs_cluster" "this" {
  name = var.name
  tags = local.tags

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

# Builds may run on FARGATE_SPOT: an interrupted build is an infrastructure error, which the queue retries.
resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

resource "aws_cloudwatch_log_group" "this" {
  for_each          = toset(["app", "proxy", "build"])
  name              = "/${var.name}/${each.key}"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

locals {
  logging = {
    for role in ["app", "proxy", "build"] : role => {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this[role].name
        awslogs-region        = local.region
        awslogs-stream-prefix = role
      }
    }
  }

  # The password is not in the URL: pgx reads PGPASSWORD, which ECS fills from RDS's managed secret.
  database_url = "postgres://${aws_db_instance.this.username}@${aws_db_instance.this.endpoint}/${aws_db_instance.this.db_name}?sslmode=require"

  subnets_csv = join(",", var.private_subnet_ids)
}

resource "aws_ecs_task_definition" "app" {
  family                   = "${var.name}-app"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.app_cpu
  memory                   = var.app_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.app.arn
  tags                     = local.tags

  container_definitions = jsonencode([{
    name         = "app"
    image        = var.image
    essential    = true
    command      = ["app"]
    portMappings = [{ containerPort = 8080, protocol = "tcp" }]
    environment = [
      { name = "FERRY_LISTEN", value = ":8080" },
      { name = "FERRY_DATABASE_URL", value = local.database_url },
      { name = "FERRY_STORAGE", value = local.storage_url },
      { name = "FERRY_DOMAIN", value = var.domain },
      { name = "FERRY_PUBLIC_URL", value = "https://${var.domain}" },
      { name = "FERRY_GITHUB_APP_ID", value = var.github_app_id },
      { name = "FERRY_GITHUB_API_URL", value = var.github_api_url },
      { name = "FERRY_BUILDER", value = "ecs" },
      # For the ECS builder: where and how to run `ferry build` tasks.
      { name = "FERRY_ECS_CLUSTER", value = aws_ecs_cluster.this.arn },
      { name = "FERRY_ECS_TASK_DEFINITION", value = aws_ecs_task_definition.build.family },
      { name = "FERRY_ECS_CONTAINER", value = "build" },
      { name = "FERRY_ECS_SUBNETS", value = local.subnets_csv },
      { name = "FERRY_ECS_SECURITY_GROUPS", value = aws_security_group.build.id },
      { name = "FERRY_ECS_ASSIGN_PUBLIC_IP", value = tostring(var.assign_public_ip) },
      { name = "FERRY_ECS_BUILD_ROLE_ARN", value = aws_iam_role.build.arn },
    ]
    secrets = [
      { name = "PGPASSWORD", valueFrom = "${aws_db_instance.this.master_user_secret[0].secret_arn}:password::" },
      { name = "FERRY_WEBHOOK_SECRET", valueFrom = "${var.github_app_secret_arn}:webhook_secret::" },
      { name = "FERRY_GITHUB_PRIVATE_KEY", valueFrom = "${var.github_app_secret_arn}:private_key::" },
    ]
    linuxParameters  = { initProcessEnabled = true }
    logConfiguration = local.logging["app"]
  }])
}

resource "aws_ecs_task_definition" "proxy" {
  family                   = "${var.name}-proxy"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.proxy_cpu
  memory                   = var.proxy_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.proxy.arn
  tags                     = local.tags

  container_definitions = jsonencode([{
    name         = "proxy"
    image        = var.image
    essential    = true
    command      = ["proxy"]
    portMappings = [{ containerPort = 8081, protocol = "tcp" }]
    environment = [
      { name = "FERRY_LISTEN", value = ":8081" },
      { name = "FERRY_STORAGE", value = local.storage_url },
      { name = "FERRY_DOMAIN", value = var.domain },
      # A quarter of the task's memory for cached files; large files are cached on the task's disk.
      { name = "FERRY_CACHE_BYTES", value = tostring(floor(var.proxy_memory / 4) * 1048576) },
    ]
    logConfiguration = local.logging["proxy"]
  }])
}

# The app starts one task of this definition per build, with the container command overridden to
# `ferry build ...`. No task_role_arn, on purpose (iam.tf): the upload credentials are a per-build session.
resource "aws_ecs_task_definition" "build" {
  family                   = "${var.name}-build"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.build_cpu
  memory                   = var.build_memory
  execution_role_arn       = aws_iam_role.execution.arn
  tags                     = local.tags

  ephemeral_storage {
    size_in_gib = var.build_ephemeral_storage_gib
  }

  container_definitions = jsonencode([{
    name      = "build"
    image     = var.image
    essential = true
    # No command: the app sets `build ...` per task with RunTask's container overrides.
    # The task is the sandbox (Fargate gives bubblewrap no user namespaces), so builds run with
    # --sandbox=none inside it; the per-build ECS task isolates them from each other and from the app.
    environment = [
      { name = "FERRY_SANDBOX", value = "none" },
      { name = "FERRY_STORAGE", value = local.storage_url },
      { name = "FERRY_DOMAIN", value = var.domain },
      { name = "FERRY_TIMEOUT", value = "${var.build_timeout_seconds}s" },
    ]
    linuxParameters  = { initProcessEnabled = true }
    logConfiguration = local.logging["build"]
  }])
}

resource "aws_ecs_service" "app" {
  name                              = "app"
  cluster                           = aws_ecs_cluster.this.id
  task_definition                   = aws_ecs_task_definition.app.arn
  desired_count                     = var.app_count
  launch_type                       = "FARGATE"
  health_check_grace_period_seconds = 60
  propagate_tags                    = "SERVICE"
  tags                              = local.tags

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.app.id]
    assign_public_ip = var.assign_public_ip
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.app.arn
    container_name   = "app"
    container_port   = 8080
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  depends_on = [aws_lb_listener_rule.app]
}

resource "aws_ecs_service" "proxy" {
  name                              = "proxy"
  cluster                           = aws_ecs_cluster.this.id
  task_definition                   = aws_ecs_task_definition.proxy.arn
  desired_count                     = var.proxy_count
  launch_type                       = "FARGATE"
  health_check_grace_period_seconds = 30
  propagate_tags                    = "SERVICE"
  tags                              = local.tags

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.proxy.id]
    assign_public_ip = var.assign_public_ip
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.proxy.arn
    container_name   = "proxy"
    container_port   = 8081
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  # Autoscaling owns the count after creation.
  lifecycle {
    ignore_changes = [desired_count]
  }

  depends_on = [aws_lb_listener_rule.proxy]
}

resource "aws_appautoscaling_target" "proxy" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.proxy.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.proxy_count
  max_capacity       = var.proxy_max_count
}

resource "aws_appautoscaling_policy" "proxy_cpu" {
  name               = "${var.name}-proxy-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.proxy.service_namespace
  resource_id        = aws_appautoscaling_target.proxy.resource_id
  scalable_dimension = aws_appautoscaling_target.proxy.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value = 60
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

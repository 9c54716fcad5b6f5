# Each security group opens only the paths of the picture in deploy/README.md:
# internet -> ALB (80, 443) -> app (8080) and proxy (8081); app -> database (5432); everything else out on 443
# (S3, GitHub, STS, ECS, the npm registry, the image registry). Amazon's DNS resolver is not subject to
# security groups, so no rule is needed for it.

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "Ferry load balancer: HTTPS (and HTTP redirected) from anywhere"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each          = toset(["0.0.0.0/0", "::/0"])
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value == "0.0.0.0/0" ? each.value : null
  cidr_ipv6         = each.value == "::/0" ? each.value : null
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  for_each          = toset(["0.0.0.0/0", "::/0"])
  security_group_id = aws_security_group.alb.id
  description       = "HTTP, redirected to HTTPS"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = each.value == "0.0.0.0/0" ? each.value : null
  cidr_ipv6         = each.value == "::/0" ? each.value : null
}

resource "aws_vpc_security_group_egress_rule" "alb_to_app" {
  security_group_id            = aws_security_group.alb.id
  description                  = "to ferry app"
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
  referenced_security_group_id = aws_security_group.app.id
}

resource "aws_vpc_security_group_egress_rule" "alb_to_proxy" {
  security_group_id            = aws_security_group.alb.id
  description                  = "to ferry proxy"
  ip_protocol                  = "tcp"
  from_port                    = 8081
  to_port                      = 8081
  referenced_security_group_id = aws_security_group.proxy.id
}

resource "aws_security_group" "app" {
  name        = "${var.name}-app"
  description = "ferry app: from the ALB; out to PostgreSQL and HTTPS"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "app_from_alb" {
  security_group_id            = aws_security_group.app.id
  description                  = "from the ALB"
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_egress_rule" "app_to_db" {
  security_group_id            = aws_security_group.app.id
  description                  = "to PostgreSQL"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.db.id
}

resource "aws_vpc_security_group_egress_rule" "app_https" {
  security_group_id = aws_security_group.app.id
  description       = "HTTPS: S3, GitHub API, STS, ECS, image registry"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_security_group" "proxy" {
  name        = "${var.name}-proxy"
  description = "ferry proxy: from the ALB; out to S3 over HTTPS"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "proxy_from_alb" {
  security_group_id            = aws_security_group.proxy.id
  description                  = "from the ALB"
  ip_protocol                  = "tcp"
  from_port                    = 8081
  to_port                      = 8081
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_egress_rule" "proxy_https" {
  security_group_id = aws_security_group.proxy.id
  description       = "HTTPS: S3, image registry"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# Build tasks run untrusted code: no inbound at all, and no path to the database or the services' ports.
resource "aws_security_group" "build" {
  name        = "${var.name}-build"
  description = "ferry build tasks: no inbound; out on HTTPS only"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_egress_rule" "build_https" {
  security_group_id = aws_security_group.build.id
  description       = "HTTPS: git clone, npm registry, S3, the app's build events endpoint via the ALB"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_security_group" "db" {
  name        = "${var.name}-db"
  description = "PostgreSQL: from ferry app only"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "db_from_app" {
  security_group_id            = aws_security_group.db.id
  description                  = "from ferry app"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.app.id
}

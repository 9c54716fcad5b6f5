package deploy

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

const tfDir = "terraform"

// TestTerraformFmt runs `terraform fmt -check`. Terraform is not in Debian's archive, which is all CI can
// install from, so this test skips wherever terraform is absent, CI included; TestTerraformFormatted below
// applies the same formatter (HCL's, which terraform fmt is built on) everywhere.
func TestTerraformFmt(t *testing.T) {
	tf, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("terraform is not installed, and CI cannot install it (not in Debian's archive); TestTerraformFormatted checks formatting without it")
	}
	cfg := filepath.Join(t.TempDir(), "terraformrc")
	if err := os.WriteFile(cfg, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tf, "fmt", "-check", "-recursive", "-diff")
	cmd.Dir = tfDir
	cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+cfg, "CHECKPOINT_DISABLE=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("terraform fmt -check -recursive: %v (run terraform fmt -recursive deploy/terraform)\n%s", err, out)
	}
}

// tfFiles returns every .tf file under deploy/terraform, examples included.
func tfFiles(t testing.TB) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(tfDir, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() && strings.HasPrefix(e.Name(), ".") && p != tfDir {
			return filepath.SkipDir
		}
		if strings.HasSuffix(p, ".tf") {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files[p] = b
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no .tf files")
	}
	return files
}

func TestTerraformFormatted(t *testing.T) {
	for name, src := range tfFiles(t) {
		if got := hclwrite.Format(src); !bytes.Equal(got, src) {
			t.Errorf("%s is not formatted (run terraform fmt -recursive deploy/terraform)", name)
		}
	}
}

// module is what the static checks read from the root module's files.
type module struct {
	body      map[string]*hclsyntax.Body // file name -> body
	variables map[string]*hclsyntax.Block
	outputs   map[string]*hclsyntax.Block
	locals    map[string]*hclsyntax.Attribute
	resources map[string]*hclsyntax.Block // "type.name"
	data      map[string]*hclsyntax.Block // "type.name"
}

func loadModule(t testing.TB, dir string) *module {
	t.Helper()
	m := &module{
		body: map[string]*hclsyntax.Body{}, variables: map[string]*hclsyntax.Block{}, outputs: map[string]*hclsyntax.Block{},
		locals: map[string]*hclsyntax.Attribute{}, resources: map[string]*hclsyntax.Block{}, data: map[string]*hclsyntax.Block{},
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.tf"))
	for _, name := range names {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
		if diags.HasErrors() {
			t.Fatalf("parse %s: %s", name, diags.Error())
		}
		body := f.Body.(*hclsyntax.Body)
		m.body[name] = body
		for _, b := range body.Blocks {
			key := strings.Join(b.Labels, ".")
			dup := func(seen map[string]*hclsyntax.Block) {
				if _, ok := seen[key]; ok {
					t.Errorf("%s: %s %s declared twice", name, b.Type, key)
				}
				seen[key] = b
			}
			switch b.Type {
			case "variable":
				dup(m.variables)
			case "output":
				dup(m.outputs)
			case "resource":
				dup(m.resources)
			case "data":
				dup(m.data)
			case "locals":
				for n, a := range b.Body.Attributes {
					if _, ok := m.locals[n]; ok {
						t.Errorf("%s: local %s declared twice", name, n)
					}
					m.locals[n] = a
				}
			case "terraform", "provider", "module":
			default:
				t.Errorf("%s: unknown top-level block %s", name, b.Type)
			}
		}
	}
	return m
}

// TestTerraformReferences is a small `terraform validate` for what can be checked without the AWS provider
// (which cannot be downloaded here): every var., local., resource and data reference names something
// declared, and every variable is used.
func TestTerraformReferences(t *testing.T) {
	m := loadModule(t, tfDir)
	used := map[string]bool{}
	for name, body := range m.body {
		hclsyntax.VisitAll(body, func(n hclsyntax.Node) hcl.Diagnostics {
			e, ok := n.(hclsyntax.Expression)
			if !ok {
				return nil
			}
			if _, isScope := n.(*hclsyntax.ScopeTraversalExpr); !isScope {
				return nil
			}
			for _, tr := range e.Variables() {
				parts := traversalNames(tr)
				ref := strings.Join(parts, ".")
				switch root := parts[0]; {
				case root == "var" && len(parts) > 1:
					used[parts[1]] = true
					if m.variables[parts[1]] == nil {
						t.Errorf("%s:%d: %s is not declared", name, tr.SourceRange().Start.Line, ref)
					}
				case root == "local" && len(parts) > 1:
					if m.locals[parts[1]] == nil {
						t.Errorf("%s:%d: %s is not declared", name, tr.SourceRange().Start.Line, ref)
					}
				case root == "data" && len(parts) > 2:
					if m.data[parts[1]+"."+parts[2]] == nil {
						t.Errorf("%s:%d: %s is not declared", name, tr.SourceRange().Start.Line, ref)
					}
				case strings.HasPrefix(root, "aws_") && len(parts) > 1:
					if m.resources[root+"."+parts[1]] == nil {
						t.Errorf("%s:%d: %s is not declared", name, tr.SourceRange().Start.Line, ref)
					}
				case root == "each" || root == "count" || root == "self" || root == "path" || root == "terraform":
				default:
					// Iteration symbols of for expressions and dynamic blocks (o, rule, project, ...).
				}
			}
			return nil
		})
	}
	for v, b := range m.variables {
		if !used[v] {
			t.Errorf("variable %s is declared but never used", v)
		}
		if _, ok := b.Body.Attributes["description"]; !ok {
			t.Errorf("variable %s has no description", v)
		}
		if _, ok := b.Body.Attributes["type"]; !ok {
			t.Errorf("variable %s has no type", v)
		}
	}
	for o, b := range m.outputs {
		if _, ok := b.Body.Attributes["description"]; !ok {
			t.Errorf("output %s has no description", o)
		}
	}
}

func traversalNames(tr hcl.Traversal) []string {
	var parts []string
	for _, s := range tr {
		switch s := s.(type) {
		case hcl.TraverseRoot:
			parts = append(parts, s.Name)
		case hcl.TraverseAttr:
			parts = append(parts, s.Name)
		default:
			return parts
		}
	}
	return parts
}

// TestTerraformInterface pins the module's contract with its callers: which inputs are required, which outputs
// exist, and which resources make up the picture in deploy/README.md.
func TestTerraformInterface(t *testing.T) {
	m := loadModule(t, tfDir)
	var required []string
	for v, b := range m.variables {
		if _, ok := b.Body.Attributes["default"]; !ok {
			required = append(required, v)
		}
	}
	sort.Strings(required)
	want := "bucket_name,domain,github_app_id,github_app_secret_arn,image,private_subnet_ids,public_subnet_ids,vpc_id"
	if got := strings.Join(required, ","); got != want {
		t.Errorf("required variables %s, want %s", got, want)
	}
	for _, o := range []string{"storage_url", "load_balancer_dns_name", "github_actions_role_arns", "build_role_arn",
		"build_task_definition_family", "build_security_group_id", "cluster_arn", "database_endpoint", "migrate_command"} {
		if m.outputs[o] == nil {
			t.Errorf("output %s is missing", o)
		}
	}
	for _, r := range []string{"aws_s3_bucket.storage", "aws_s3_bucket_versioning.storage", "aws_s3_bucket_public_access_block.storage",
		"aws_s3_bucket_lifecycle_configuration.storage", "aws_ecs_cluster.this", "aws_ecs_task_definition.build",
		"aws_ecs_task_definition.app", "aws_ecs_task_definition.proxy", "aws_ecs_service.app", "aws_ecs_service.proxy",
		"aws_lb.this", "aws_lb_listener.https", "aws_acm_certificate.this", "aws_db_instance.this",
		"aws_iam_openid_connect_provider.github", "aws_iam_role.github", "aws_iam_role.build", "aws_iam_role.app"} {
		if m.resources[r] == nil {
			t.Errorf("resource %s is missing", r)
		}
	}
	// Untrusted build code can read a task role's credentials, so the build task must not have one.
	if b := m.resources["aws_ecs_task_definition.build"]; b != nil {
		if _, ok := b.Body.Attributes["task_role_arn"]; ok {
			t.Error("the build task definition has a task_role_arn; build code could use its credentials")
		}
	}
	// The bucket is versioned, and the certificate covers D and *.D.
	if lit := literal(t, m, "aws_s3_bucket_versioning.storage", "versioning_configuration", "status"); lit != "Enabled" {
		t.Errorf("versioning status %q", lit)
	}
	acm := m.resources["aws_acm_certificate.this"]
	if got := exprSource(m, acm.Body.Attributes["subject_alternative_names"].Expr); got != `["*.${var.domain}"]` {
		t.Errorf("certificate SANs %s, want *.D", got)
	}
	pab := m.resources["aws_s3_bucket_public_access_block.storage"]
	for _, a := range []string{"block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"} {
		if v := evalStatic(t, pab.Body.Attributes[a].Expr); !v.True() {
			t.Errorf("public access block %s is not true", a)
		}
	}
}

// TestTerraformSecurityGroups checks that only the load balancer takes traffic from addresses, and on 80 and
// 443 alone; everything else admits only other security groups, and builds admit nothing.
func TestTerraformSecurityGroups(t *testing.T) {
	m := loadModule(t, tfDir)
	ingressTo := map[string]int{}
	for key, b := range m.resources {
		if !strings.HasPrefix(key, "aws_vpc_security_group_ingress_rule.") {
			if strings.HasPrefix(key, "aws_security_group_rule.") || (strings.HasPrefix(key, "aws_security_group.") && hasBlock(b, "ingress")) {
				t.Errorf("%s: write rules as aws_vpc_security_group_ingress_rule so this test sees them", key)
			}
			continue
		}
		sg := exprSource(m, b.Body.Attributes["security_group_id"].Expr)
		ingressTo[sg]++
		_, v4 := b.Body.Attributes["cidr_ipv4"]
		_, v6 := b.Body.Attributes["cidr_ipv6"]
		if v4 || v6 {
			port := evalStatic(t, b.Body.Attributes["from_port"].Expr)
			if sg != "aws_security_group.alb.id" {
				t.Errorf("%s: %s admits addresses; only the load balancer may", key, sg)
			}
			if p, _ := port.AsBigFloat().Int64(); p != 80 && p != 443 {
				t.Errorf("%s: the load balancer admits port %d", key, p)
			}
		}
	}
	if n := ingressTo["aws_security_group.build.id"]; n != 0 {
		t.Errorf("build tasks admit %d ingress rules, want none", n)
	}
	if n := ingressTo["aws_security_group.db.id"]; n != 1 {
		t.Errorf("the database has %d ingress rules, want 1 (from the app)", n)
	}
}

func hasBlock(b *hclsyntax.Block, typ string) bool {
	for _, c := range b.Body.Blocks {
		if c.Type == typ {
			return true
		}
	}
	return false
}

// TestTerraformGitHubOIDCPolicies evaluates the GitHub role's trust and permissions policies, as Terraform
// would, for one project, and checks their scope.
func TestTerraformGitHubOIDCPolicies(t *testing.T) {
	m := loadModule(t, tfDir)
	const bucketARN = "arn:aws:s3:::sites"
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{
			"each": cty.ObjectVal(map[string]cty.Value{"key": cty.StringVal("web"), "value": cty.StringVal("acme/web")}),
			"local": cty.ObjectVal(map[string]cty.Value{
				"github_oidc_url":          evalStatic(t, m.locals["github_oidc_url"].Expr),
				"github_oidc_provider_arn": cty.StringVal("arn:aws:iam::111122223333:oidc-provider/x"),
				"bucket_arn":               cty.StringVal(bucketARN),
			}),
		},
		Functions: map[string]function.Function{"jsonencode": stdlib.JSONEncodeFunc},
	}
	trust := evalPolicy(t, m.resources["aws_iam_role.github"].Body.Attributes["assume_role_policy"].Expr, ctx)
	if len(trust.Statement) != 1 {
		t.Fatalf("trust policy has %d statements", len(trust.Statement))
	}
	st := trust.Statement[0]
	if st.Action != "sts:AssumeRoleWithWebIdentity" {
		t.Errorf("trust action %v", st.Action)
	}
	oidc := "token.actions.githubusercontent.com"
	if got := st.Condition["StringEquals"][oidc+":aud"]; got != "sts.amazonaws.com" {
		t.Errorf("audience condition %v", got)
	}
	subs, _ := json.Marshal(st.Condition["StringLike"][oidc+":sub"])
	if want := `["repo:acme/web:ref:refs/heads/*","repo:acme/web:pull_request","repo:acme/web:environment:*"]`; string(subs) != want {
		t.Errorf("subjects %s\nwant %s", subs, want)
	}
	perms := evalPolicy(t, m.resources["aws_iam_role_policy.github"].Body.Attributes["policy"].Expr, ctx)
	for _, st := range perms.Statement {
		switch r := st.Resource.(type) {
		case string:
			if r != bucketARN && r != bucketARN+"/projects/web/*" {
				t.Errorf("statement %s reaches %s, outside projects/web/", st.Sid, r)
			}
			if r == bucketARN && st.Action != "s3:ListBucket" {
				t.Errorf("statement %s grants %v on the bucket itself", st.Sid, st.Action)
			}
		default:
			t.Errorf("statement %s: resource %v is not one ARN", st.Sid, r)
		}
		if st.Effect != "Allow" {
			t.Errorf("statement %s: effect %s", st.Sid, st.Effect)
		}
	}
}

type policy struct {
	Statement []struct {
		Sid       string
		Effect    string
		Action    any
		Resource  any
		Condition map[string]map[string]any
	}
}

func evalPolicy(t *testing.T, e hcl.Expression, ctx *hcl.EvalContext) policy {
	t.Helper()
	v, diags := e.Value(ctx)
	if diags.HasErrors() {
		t.Fatalf("evaluate policy: %s", diags.Error())
	}
	var p policy
	if err := json.Unmarshal([]byte(v.AsString()), &p); err != nil {
		t.Fatalf("policy JSON: %v\n%s", err, v.AsString())
	}
	return p
}

func evalStatic(t *testing.T, e hcl.Expression) cty.Value {
	t.Helper()
	v, diags := e.Value(nil)
	if diags.HasErrors() {
		t.Fatalf("evaluate %s: %s", e.Range(), diags.Error())
	}
	return v
}

// literal is a nested attribute's static string value.
func literal(t *testing.T, m *module, resource string, path ...string) string {
	t.Helper()
	body := m.resources[resource].Body
	for _, blk := range path[:len(path)-1] {
		var next *hclsyntax.Body
		for _, b := range body.Blocks {
			if b.Type == blk {
				next = b.Body
			}
		}
		if next == nil {
			t.Fatalf("%s has no %s block", resource, blk)
		}
		body = next
	}
	a := body.Attributes[path[len(path)-1]]
	if a == nil {
		t.Fatalf("%s has no %v", resource, path)
	}
	return evalStatic(t, a.Expr).AsString()
}

// exprSource is an expression's source text.
func exprSource(m *module, e hcl.Expression) string {
	r := e.Range()
	for name := range m.body {
		if name == r.Filename {
			b, _ := os.ReadFile(name)
			return string(b[r.Start.Byte:r.End.Byte])
		}
	}
	return ""
}

func TestTerraformExampleUsesEveryRequiredInput(t *testing.T) {
	m := loadModule(t, tfDir)
	ex := loadModule(t, filepath.Join(tfDir, "examples", "complete"))
	for _, body := range ex.body {
		for _, b := range body.Blocks {
			if b.Type != "module" {
				continue
			}
			for v, vb := range m.variables {
				if _, hasDefault := vb.Body.Attributes["default"]; !hasDefault {
					if _, ok := b.Body.Attributes[v]; !ok {
						t.Errorf("example does not set required input %s", v)
					}
				}
			}
			for a := range b.Body.Attributes {
				if a != "source" && m.variables[a] == nil {
					t.Errorf("example sets %s, which the module does not declare", a)
				}
			}
		}
	}
}

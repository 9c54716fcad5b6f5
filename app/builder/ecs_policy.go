package builder

import (
	"encoding/json"
	"net/url"
	"strings"

	"github.com/ferryhq/ferry/internal/buildcontract"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/site"
)

// Least privilege for ECS builds: STS AssumeRole with a session policy, rather than presigned URLs.
//
// A build learns which blobs it must upload only after it has built, and it also reads and writes its
// project's dependency cache. Presigned URLs would need a round trip to the App for every object (and a
// second upload protocol next to internal/storage); a session lets `ferry build` use the same S3 code as
// everywhere else, with credentials that reach one project alone. The App assumes the build role (whose own
// policy is the ceiling, projects/*) and passes the policy below; the session's rights are the intersection:
//
//   - s3:GetObject on projects/<project>/* (cache restore, existing blobs, its own manifest);
//   - no s3:GetObject on another trust scope's dependency cache (projects/<project>/cache/<scope>/, see
//     buildcontract.CacheScopeProduction): a preview's session cannot read production's cache, a fork's no cache;
//   - s3:PutObject and s3:AbortMultipartUpload on projects/<project>/blobs/*, .../cache/<scope>/* (not for a
//     fork), and exactly
//     .../deployments/<id>.json and .../aliases/<alias>.json for the aliases this build may move (none when
//     the App moves aliases itself), so a pull request's code cannot move production or touch another
//     project or deployment;
//   - s3:PutObject and s3:DeleteObject on .../publishing/<id>-*, the publish's marker for the garbage
//     collector (internal/site/writer.go), and no other delete;
//   - s3:ListBucket on the bucket, with s3:prefix limited to the project's prefix when a prefix is given
//     (StringLikeIfExists). It cannot be narrower: S3 answers a missing key with 404 only to callers that may
//     list the bucket, and a build reads missing keys on purpose (a first build's cache, "is this blob there
//     yet?"); a plain prefix condition would turn those 404s into 403s. A listing without a prefix shows key
//     names only, never contents.
//
// The session lasts as long as the build may (ECSConfig.SessionDuration) and reaches the task through the
// build-events claim (app/buildevents), never through RunTask's overrides.

// policyDoc is an IAM policy document.
type policyDoc struct {
	Version   string            `json:"Version"`
	Statement []policyStatement `json:"Statement"`
}

type policyStatement struct {
	Sid       string         `json:"Sid"`
	Effect    string         `json:"Effect"`
	Action    []string       `json:"Action"`
	Resource  []string       `json:"Resource"`
	Condition map[string]any `json:"Condition,omitempty"`
}

// SessionPolicy returns the session policy of one build (see above): storageURL is the s3:// URL the build
// publishes to, partition the AWS partition ("aws", "aws-cn", "aws-us-gov"), cacheScope the build's
// --cache-scope ("" is preview, as in ferry build).
func SessionPolicy(partition, storageURL, project, deploymentID, cacheScope string, aliases []string) (string, error) {
	scope, err := buildcontract.ParseCacheScope(cacheScope)
	if err != nil {
		return "", ferry.Errorf(ferry.EINVALID, "session policy: %w", err)
	}
	u, err := url.Parse(storageURL)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return "", ferry.Errorf(ferry.EINVALID, "ECS builds publish to S3: the storage URL must be s3://BUCKET/PREFIX, not %q", storageURL)
	}
	if partition == "" {
		partition = "aws"
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		prefix += "/"
	}
	if err := site.ValidateProjectName(project); err != nil {
		return "", ferry.Errorf(ferry.EINVALID, "session policy: %w", err)
	}
	if !site.IsDeploymentID(deploymentID) {
		return "", ferry.Errorf(ferry.EINVALID, "session policy: %q is not a deployment id", deploymentID)
	}
	bucket := "arn:" + partition + ":s3:::" + u.Host
	proj := prefix + site.ProjectPrefix(project) // "PREFIX/projects/<project>/"
	writes := []string{
		bucket + "/" + proj + "blobs/*",
		bucket + "/" + prefix + site.ManifestKey(project, deploymentID),
	}
	var otherCaches []string
	for _, s := range []string{buildcontract.CacheScopeProduction, buildcontract.CacheScopePreview, buildcontract.CacheScopeFork} {
		if s == scope && s != buildcontract.CacheScopeFork {
			writes = append(writes, bucket+"/"+proj+"cache/"+s+"/*")
		} else {
			otherCaches = append(otherCaches, bucket+"/"+proj+"cache/"+s+"/*")
		}
	}
	for _, a := range aliases {
		if err := site.ValidateAlias(project, a); err != nil {
			return "", ferry.Errorf(ferry.EINVALID, "session policy: %w", err)
		}
		writes = append(writes, bucket+"/"+prefix+site.AliasKey(project, a))
	}
	// The publish's own marker for the garbage collector's handshake (site/writer.go): written first, deleted
	// last, and named after this deployment so that a build cannot remove another writer's.
	marker := bucket + "/" + prefix + site.WriterPrefix(project) + deploymentID + "-*"
	writes = append(writes, marker)
	doc := policyDoc{Version: "2012-10-17", Statement: []policyStatement{
		{Sid: "OwnPublishMarker", Effect: "Allow", Action: []string{"s3:DeleteObject"}, Resource: []string{marker}},
		{Sid: "ReadProject", Effect: "Allow", Action: []string{"s3:GetObject"}, Resource: []string{bucket + "/" + proj + "*"}},
		{Sid: "NoOtherScopesCache", Effect: "Deny", Action: []string{"s3:GetObject", "s3:PutObject"}, Resource: otherCaches},
		{Sid: "WriteThisBuild", Effect: "Allow", Action: []string{"s3:PutObject", "s3:AbortMultipartUpload"}, Resource: writes},
		{Sid: "MissingKeysAre404", Effect: "Allow", Action: []string{"s3:ListBucket"}, Resource: []string{bucket},
			Condition: map[string]any{"StringLikeIfExists": map[string]any{"s3:prefix": []string{proj, proj + "*"}}}},
	}}
	b, err := json.Marshal(doc)
	if err != nil {
		return "", ferry.Errorf(ferry.EINTERNAL, "encode session policy: %w", err)
	}
	return string(b), nil
}

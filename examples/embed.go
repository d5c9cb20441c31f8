// Package examples bundles the example rules files, so that `leadpulse dev`
// runs without any file of its own.
package examples

import _ "embed"

// B2BSaaSName is the path of B2BSaaS in the repository, for messages.
const B2BSaaSName = "examples/b2b-saas.yaml"

// B2BSaaS is examples/b2b-saas.yaml: the rules `leadpulse dev` runs unless
// --rules names another file.
//
//go:embed b2b-saas.yaml
var B2BSaaS []byte

// Builds govmomi's vCenter simulator (vcsim) for Capstan's vSphere tests. v0.46.3 is the newest tag
// where vcsim is a package of the root module (later tags moved it to a module of its own that
// needs a replace, which Go ignores in a dependency).
module capstan.dev/hack/peers/vcsim

go 1.26.0

tool github.com/vmware/govmomi/vcsim

require (
	github.com/google/uuid v1.6.0 // indirect
	github.com/vmware/govmomi v0.46.3
)

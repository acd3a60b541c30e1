// Wrapper module that builds etcd 3.5 (tests/k8s/tools.sh copies it to a scratch dir). The etcd server module's own
// go.mod replaces its sibling modules with relative paths, so `go install ...@version` refuses it; a wrapper does not.
module zeromesh.io/k8s-tools/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 v3.5.35

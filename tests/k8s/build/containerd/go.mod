// Wrapper module that builds containerd 2 (the kubelet of Kubernetes 1.36 needs containerd 2.x; Debian 12 has 1.6)
// with its runc shim and ctr, for the real-cluster harness (tests/k8s/cluster/). tests/k8s/tools.sh copies it to a
// scratch dir.
module zeromesh.io/k8s-tools/containerd

go 1.26.0

require github.com/containerd/containerd/v2 v2.2.9

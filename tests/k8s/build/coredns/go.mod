// Wrapper module that builds CoreDNS, the cluster DNS of the real-cluster harness (tests/k8s/cluster/).
module zeromesh.io/k8s-tools/coredns

go 1.26.0

require github.com/coredns/coredns v1.15.0

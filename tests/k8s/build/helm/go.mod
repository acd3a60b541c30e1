// Wrapper module that builds helm v3 (tests/k8s/tools.sh copies it to a scratch dir).
module zeromesh.io/k8s-tools/helm

go 1.26.0

require helm.sh/helm/v3 v3.21.4

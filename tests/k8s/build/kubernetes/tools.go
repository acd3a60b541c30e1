//go:build tools

// Package tools records the commands this wrapper module builds.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"

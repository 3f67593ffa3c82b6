package e2e

import "testing"

func checkDashboard(t *testing.T, prom string) {}

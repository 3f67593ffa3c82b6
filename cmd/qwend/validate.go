package main

import "errors"

// exit status of an error: its ExitCode when it has one, else 1.
func exitStatus(err error) int {
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return 1
}

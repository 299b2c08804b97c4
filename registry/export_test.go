package registry

// InstanceIDFor is a fresh instance id derived from token, as REGISTER
// assigns: for tests that register an id of their own choosing.
func InstanceIDFor(token string) string { return newInstanceID(token) }

package registry

// Field checks for code that carries entries outside a REGISTER (tunnels
// share entries with their far side): the same rules, the same messages.
// Each returns nil or a *Error with CodeBadRequest.

// CheckID reports whether s is a valid instance or server id: 1 to
// MaxIDLen bytes of letters, digits, '.', '_' or '-'. field names s in the
// error.
func CheckID(field, s string) error {
	if err := checkID(field, s); err != nil {
		return err
	}
	return nil
}

// CheckProto reports whether s is a valid protocol name (see
// Service.Proto); the empty string is valid and means DefaultProto.
func CheckProto(s string) error {
	if err := checkProto(s); err != nil {
		return err
	}
	return nil
}

// CheckMeta reports whether m is valid metadata of at most maxBytes (keys
// plus values).
func CheckMeta(m map[string]string, maxBytes int) error {
	if err := checkMeta(m, maxBytes); err != nil {
		return err
	}
	return nil
}

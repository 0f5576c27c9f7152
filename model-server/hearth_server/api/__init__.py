"""HTTP surfaces of the server: one subpackage per API dialect."""

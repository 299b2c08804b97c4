// Package resume lets a handler that hijacked an HTTP connection (a
// blocking query parked without its goroutines) hand it back to the
// http.Server for the connection's next request: a Listener whose Accept
// also returns connections given back with Resume. A resumed connection
// waits for its next request in one small goroutine, not in net/http's
// (which holds 8 KiB of buffers per connection), until IdleTimeout.
package resume

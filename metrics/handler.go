package metrics

import (
	"net/http"
	"strconv"
)

// Handler serves what write writes, on every GET or HEAD: the scrape sees
// the counters as they are at that moment. A bad name (a bug of write) is
// a 500 with the error, so a test sees it at once.
func Handler(write func(r *http.Request, w *Writer)) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			rw.Header().Set("Allow", "GET, HEAD")
			http.Error(rw, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		var w Writer
		write(r, &w)
		if err := w.Err(); err != nil {
			http.Error(rw, err.Error(), http.StatusInternalServerError)
			return
		}
		rw.Header().Set("Content-Type", ContentType)
		rw.Header().Set("Content-Length", strconv.Itoa(len(w.B)))
		if r.Method == http.MethodGet {
			_, _ = rw.Write(w.B)
		}
	})
}

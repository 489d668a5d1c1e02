"""Download, compress, store and record images: the work behind a request."""

"""The browser page at ``/``: static HTML, CSS and JavaScript that talk only to the public API."""

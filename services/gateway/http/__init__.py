"""HTTP/JSON front of the gateway: the SearchService's calls at their google.api.http paths."""

# Varnish (7.1, Debian 12) in front of origin_proxy: /etc/varnish/default.vcl.
# Tested as shipped by tests/edges/ (only the backend port changes there).
#
# Cache key: the URL with its query string (?start=&end= choose the clip) and the Host. Range requests pass to
# origin_proxy and each range is cached as its own object, so a seek into a large clip does not fetch all of it
# first. Caching follows origin_proxy's Cache-Control; Vary: Origin (CORS with a list of origins) is honoured.
vcl 4.1;

backend origin_proxy {
    .host = "127.0.0.1";
    .port = "8080";
}

sub vcl_recv {
    set req.backend_hint = origin_proxy;
    if (req.method != "GET" && req.method != "HEAD" && req.method != "OPTIONS") {
        return (synth(405));
    }
    # CORS preflights are cheap and depend on request headers: pass them.
    if (req.method == "OPTIONS") {
        return (pass);
    }
    # Keep req.url as is: do not strip or sort the query string away.
    if (req.http.Range) {
        set req.http.X-Origin-Range = req.http.Range;
    }
}

sub vcl_hash {
    hash_data(req.url);
    if (req.http.host) {
        hash_data(req.http.host);
    }
    if (req.http.X-Origin-Range) {
        hash_data(req.http.X-Origin-Range);
        unset req.http.Range;  # Varnish would otherwise fetch the whole object and cut the range itself
    }
    return (lookup);
}

sub vcl_backend_fetch {
    if (bereq.http.X-Origin-Range) {
        set bereq.http.Range = bereq.http.X-Origin-Range;
        unset bereq.http.X-Origin-Range;
    }
}

sub vcl_backend_response {
    if (beresp.status == 206) {
        # Keep the 206 and its Content-Range as a cached object of its own. Varnish 7.1 refuses a backend 206
        # it did not ask a range for ("Unexpected content-range header", 503): the saved copy goes in its own
        # header and Content-Range is unset on the backend response.
        set beresp.http.X-Origin-Content-Range = beresp.http.Content-Range;
        unset beresp.http.Content-Range;
    }
}

sub vcl_deliver {
    if (resp.http.X-Origin-Content-Range) {
        set resp.status = 206;
        set resp.http.Content-Range = resp.http.X-Origin-Content-Range;
        unset resp.http.X-Origin-Content-Range;
    }
}

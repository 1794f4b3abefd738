"""A local Sphinx extension for the ncrepro book.

Sphinx 7.4 registers an inline script both in its registry and on the live builder when an
extension calls ``add_js_file`` after the builder exists (sphinx-thebe and sphinx-togglebutton
do), so each such script appears twice in every page. ``const THEBE_JS_URL`` declared twice is
a SyntaxError in the browser console. Drop exact duplicates when each page is rendered.
"""


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    seen = set()
    unique = []
    for script in context.get("script_files", []):
        # The two copies differ only in filename: None in one, "" in the other.
        attributes = tuple(sorted(getattr(script, "attributes", {}).items()))
        key = (getattr(script, "filename", str(script)) or "", attributes)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    # In place: the list is the builder's own, which sphinx.ext.mathjax appends to later.
    context["script_files"][:] = unique


def setup(app):
    # Early: html-page-context stops at the first handler that returns a template name.
    app.connect("html-page-context", _dedupe_scripts, priority=1)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

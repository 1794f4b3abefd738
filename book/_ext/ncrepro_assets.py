"""A local Sphinx extension for the ncrepro book: a bibliography labelled author–year, like the
citations in the text, and no duplicated inline scripts.

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


def _register_author_year_style():
    """The bibliography labelled as the text cites: "Zhou et al., 2022" rather than "[1]".

    pybtex has number and alpha label styles only; this one names the first author (and the
    second, or "et al.") with the year, and sorts like plain."""
    from pybtex.plugin import register_plugin
    from pybtex.style.formatting.plain import Style as PlainStyle
    from pybtex.style.labels import BaseLabelStyle

    class AuthorYearLabels(BaseLabelStyle):
        def format_labels(self, sorted_entries):
            entries = list(sorted_entries)
            labels = []
            for entry in entries:
                people = entry.persons.get("author") or entry.persons.get("editor") or []
                names = [" ".join(p.last_names) for p in people]
                if len(names) > 2:
                    who = f"{names[0]} et al."
                elif names:
                    who = " and ".join(names)
                else:
                    who = entry.key
                labels.append(f"{who}, {entry.fields.get('year', 'n.d.')}")
            # Two works with one label (Zhou et al., 2022 twice) become 2022a and 2022b.
            seen = {}
            for label in labels:
                seen[label] = seen.get(label, 0) + 1
            suffix = {}
            for label in labels:
                if seen[label] > 1:
                    suffix[label] = suffix.get(label, 0) + 1
                    yield label + "abcdefghijklmnopqrstuvwxyz"[suffix[label] - 1]
                else:
                    yield label

    class AuthorYearStyle(PlainStyle):
        default_label_style = "ncrepro_author_year"

    register_plugin("pybtex.style.labels", "ncrepro_author_year", AuthorYearLabels)
    register_plugin("pybtex.style.formatting", "ncrepro_author_year", AuthorYearStyle)


def setup(app):
    _register_author_year_style()
    # Early: html-page-context stops at the first handler that returns a template name.
    app.connect("html-page-context", _dedupe_scripts, priority=1)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

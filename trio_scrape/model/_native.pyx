# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Selector queries and their texts in C, over selectolax's own lexbor tree.

The per-field work of a scraper (``ctx.text_of(row, "span.sku")``) is a selector query and a
text read. Through selectolax's Python API each query parses its selector text again in a
fresh CSS memory pool and each match becomes a Python ``LexborNode``; here a selector is
compiled once per thread and kept (a bounded cache), matches stay ``lxb_dom_node_t`` pointers,
and only the texts asked for become Python strings. Results are selectolax's exactly: the same
lexbor engine, options and callbacks' rules (the fragment wrapper skipped, a template's
content not matching itself), the same text (lexbor's textContent, decoded as selectolax
decodes it), the same ``SelectolaxError`` for a selector that does not parse.

How the module reaches lexbor. selectolax links lexbor statically into its extension and ships
no lexbor headers, and Python loads extensions with ``RTLD_LOCAL``, so lexbor's symbols are
neither declared for this module's compiler nor visible to its dynamic linker. At import the
module opens selectolax's extension (already loaded: ``dlopen`` of its path with
``RTLD_NOLOAD`` finds the same copy) and takes the few functions it uses with ``dlsym``: the
very lexbor that built the tree, whatever the load order, with no symbol made global (which
``ctypes.CDLL(path, RTLD_GLOBAL)`` would do for every process) and no undefined symbol in this
module (so it cannot fail half-loaded). A missing symbol is an ``ImportError``.

The two selectolax objects it reads, ``LexborNode`` and ``LexborHTMLParser``, are declared here
by their C layout (selectolax 1.0's); Cython compares each declared size with the installed
type's on import (``check_size error``), and the import then checks the fields on probe
documents (a node's pointer is its ``mem_id``, a fragment parser says so). Any mismatch is an
exception on import, and the callers (:mod:`trio_scrape.model.native`) use selectolax's Python
API instead: the same results, slower.

Nodes with a fragment root (``_get_node``) are searched through selectolax's own API.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.long cimport PyLong_AsSsize_t, PyLong_FromSize_t
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_DecodeASCII, PyUnicode_DecodeUTF8
from libc.stdlib cimport free, malloc

import threading

import selectolax.lexbor as _lexbor
from selectolax.lexbor import SelectolaxError

cdef extern from *:
    """
    #include <dlfcn.h>
    #include <stdbool.h>
    #include <stddef.h>

    typedef unsigned char trio_lxb_char_t;
    typedef unsigned int trio_lxb_status_t;
    typedef struct trio_lxb_node trio_lxb_node_t;  /* lxb_dom_node_t: opaque here */
    typedef void trio_lxb_css_parser_t;
    typedef void trio_lxb_css_selectors_t;
    typedef void trio_lxb_selectors_t;
    typedef void trio_lxb_selector_list_t;
    typedef trio_lxb_status_t (*trio_lxb_find_cb)(trio_lxb_node_t *node, void *spec, void *ctx);

    /* selectolax 1.0's object layouts (Cython's: the vtable pointer first). */
    typedef struct {
        PyObject_HEAD
        void *vtab;
        void *document;  /* lxb_html_document_t *: its lxb_dom_document_t comes first */
        trio_lxb_node_t *_fragment_wrapper;
        int _is_fragment;
        uintptr_t _fragment_tag_id;
        uintptr_t _fragment_namespace_id;
        PyObject *raw_html;
        PyObject *_selector;
        unsigned long _mutation_count;
        PyObject *cached_script_texts;
        PyObject *cached_script_srcs;
    } trio_LexborHTMLParserObject;

    typedef struct {
        PyObject_HEAD
        void *vtab;
        trio_lxb_node_t *node;
        trio_LexborHTMLParserObject *parser;
        int _is_fragment_root;
        int _is_template_content;
    } trio_LexborNodeObject;

    #define TRIO_LXB_STATUS_OK 0x0000
    /* lexbor_status_t's LXB_STATUS_STOP in the lexbor selectolax 1.0 declares (any status
       but OK ends lxb_selectors_find's walk, so an older numbering stops it all the same). */
    #define TRIO_LXB_STATUS_STOP 0x0013
    #define TRIO_LXB_SELECTORS_OPT_DEFAULT 0x00
    #define TRIO_LXB_SELECTORS_OPT_MATCH_ROOT (1 << 1)

    static trio_lxb_css_parser_t *(*trio_css_parser_create)(void);
    static trio_lxb_status_t (*trio_css_parser_init)(trio_lxb_css_parser_t *, void *);
    static trio_lxb_css_parser_t *(*trio_css_parser_destroy)(trio_lxb_css_parser_t *, bool);
    static void (*trio_css_parser_memory_set)(trio_lxb_css_parser_t *, void *);
    static void (*trio_css_parser_selectors_set)(trio_lxb_css_parser_t *, trio_lxb_css_selectors_t *);
    static trio_lxb_css_selectors_t *(*trio_css_selectors_create)(void);
    static trio_lxb_status_t (*trio_css_selectors_init)(trio_lxb_css_selectors_t *);
    static trio_lxb_css_selectors_t *(*trio_css_selectors_destroy)(trio_lxb_css_selectors_t *, bool);
    static trio_lxb_selector_list_t *(*trio_css_selectors_parse)(
        trio_lxb_css_parser_t *, const trio_lxb_char_t *, size_t);
    static void (*trio_css_selector_list_destroy_memory)(trio_lxb_selector_list_t *);
    static trio_lxb_selectors_t *(*trio_selectors_create)(void);
    static trio_lxb_status_t (*trio_selectors_init)(trio_lxb_selectors_t *);
    static trio_lxb_selectors_t *(*trio_selectors_destroy)(trio_lxb_selectors_t *, bool);
    static void (*trio_selectors_opt_set)(trio_lxb_selectors_t *, int);
    static trio_lxb_status_t (*trio_selectors_find)(
        trio_lxb_selectors_t *, trio_lxb_node_t *, trio_lxb_selector_list_t *,
        trio_lxb_find_cb, void *);
    static trio_lxb_char_t *(*trio_node_text_content)(trio_lxb_node_t *, size_t *);
    static trio_lxb_char_t *(*trio_document_destroy_text)(void *, trio_lxb_char_t *);
    static trio_lxb_node_t *(*trio_node_parent)(trio_lxb_node_t *);

    /* Bind every function from the already-loaded library at `path`: NULL when all are
       found, else the name of the first one missing (or the dlopen error). */
    static const char *trio_lexbor_bind(const char *path) {
        /* RTLD_NOLOAD: the copy Python loaded, or none (never a second lexbor). */
        void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
        if (lib == NULL) {
            const char *error = dlerror();
            return error == NULL ? "dlopen failed" : error;
        }
    #define TRIO_BIND(target, name) \\
        if ((*(void **)(&target) = dlsym(lib, name)) == NULL) return name;
        TRIO_BIND(trio_css_parser_create, "lxb_css_parser_create")
        TRIO_BIND(trio_css_parser_init, "lxb_css_parser_init")
        TRIO_BIND(trio_css_parser_destroy, "lxb_css_parser_destroy")
        TRIO_BIND(trio_css_parser_memory_set, "lxb_css_parser_memory_set_noi")
        TRIO_BIND(trio_css_parser_selectors_set, "lxb_css_parser_selectors_set_noi")
        TRIO_BIND(trio_css_selectors_create, "lxb_css_selectors_create")
        TRIO_BIND(trio_css_selectors_init, "lxb_css_selectors_init")
        TRIO_BIND(trio_css_selectors_destroy, "lxb_css_selectors_destroy")
        TRIO_BIND(trio_css_selectors_parse, "lxb_css_selectors_parse")
        TRIO_BIND(trio_css_selector_list_destroy_memory, "lxb_css_selector_list_destroy_memory")
        TRIO_BIND(trio_selectors_create, "lxb_selectors_create")
        TRIO_BIND(trio_selectors_init, "lxb_selectors_init")
        TRIO_BIND(trio_selectors_destroy, "lxb_selectors_destroy")
        TRIO_BIND(trio_selectors_opt_set, "lxb_selectors_opt_set_noi")
        TRIO_BIND(trio_selectors_find, "lxb_selectors_find")
        TRIO_BIND(trio_node_text_content, "lxb_dom_node_text_content")
        TRIO_BIND(trio_document_destroy_text, "lxb_dom_document_destroy_text_noi")
        TRIO_BIND(trio_node_parent, "lxb_dom_node_parent_noi")
    #undef TRIO_BIND
        /* The handle stays open: selectolax's module is never unloaded. */
        return NULL;
    }
    """
    ctypedef unsigned char lxb_char_t "trio_lxb_char_t"
    ctypedef unsigned int lxb_status_t "trio_lxb_status_t"
    ctypedef struct lxb_node_t "trio_lxb_node_t"
    ctypedef void css_parser_t "trio_lxb_css_parser_t"
    ctypedef void css_selectors_t "trio_lxb_css_selectors_t"
    ctypedef void selectors_t "trio_lxb_selectors_t"
    ctypedef void selector_list_t "trio_lxb_selector_list_t"
    ctypedef lxb_status_t (*find_cb "trio_lxb_find_cb")(lxb_node_t *node, void *spec, void *ctx) noexcept

    lxb_status_t STATUS_OK "TRIO_LXB_STATUS_OK"
    lxb_status_t STATUS_STOP "TRIO_LXB_STATUS_STOP"
    int OPT_DEFAULT "TRIO_LXB_SELECTORS_OPT_DEFAULT"
    int OPT_MATCH_ROOT "TRIO_LXB_SELECTORS_OPT_MATCH_ROOT"

    css_parser_t *css_parser_create "trio_css_parser_create"()
    lxb_status_t css_parser_init "trio_css_parser_init"(css_parser_t *, void *)
    css_parser_t *css_parser_destroy "trio_css_parser_destroy"(css_parser_t *, bint)
    void css_parser_memory_set "trio_css_parser_memory_set"(css_parser_t *, void *)
    void css_parser_selectors_set "trio_css_parser_selectors_set"(css_parser_t *, css_selectors_t *)
    css_selectors_t *css_selectors_create "trio_css_selectors_create"()
    lxb_status_t css_selectors_init "trio_css_selectors_init"(css_selectors_t *)
    css_selectors_t *css_selectors_destroy "trio_css_selectors_destroy"(css_selectors_t *, bint)
    selector_list_t *css_selectors_parse "trio_css_selectors_parse"(
        css_parser_t *, const lxb_char_t *, size_t)
    void css_selector_list_destroy_memory "trio_css_selector_list_destroy_memory"(selector_list_t *)
    selectors_t *selectors_create "trio_selectors_create"()
    lxb_status_t selectors_init "trio_selectors_init"(selectors_t *)
    selectors_t *selectors_destroy "trio_selectors_destroy"(selectors_t *, bint)
    void selectors_opt_set "trio_selectors_opt_set"(selectors_t *, int)
    lxb_status_t selectors_find "trio_selectors_find"(
        selectors_t *, lxb_node_t *, selector_list_t *, find_cb, void *)
    lxb_char_t *node_text_content "trio_node_text_content"(lxb_node_t *, size_t *)
    lxb_char_t *document_destroy_text "trio_document_destroy_text"(void *, lxb_char_t *)
    lxb_node_t *node_parent "trio_node_parent"(lxb_node_t *)

    const char *lexbor_bind "trio_lexbor_bind"(const char *path)

    ctypedef class selectolax.lexbor.LexborHTMLParser [object trio_LexborHTMLParserObject, check_size error]:
        cdef void *document
        cdef lxb_node_t *_fragment_wrapper
        cdef int _is_fragment

    ctypedef class selectolax.lexbor.LexborNode [object trio_LexborNodeObject, check_size error]:
        cdef lxb_node_t *node
        cdef LexborHTMLParser parser
        cdef int _is_fragment_root
        cdef int _is_template_content


__all__ = ["CACHE_SIZE", "first_text", "row_texts"]

#: Most compiled selectors a thread keeps (each in a lexbor CSS memory pool of its own, about
#: 30 KB); past it, the cache starts again empty. A spider uses a few dozen at most.
CACHE_SIZE = 64

cdef enum:
    _INLINE = 64  # matches a search holds before it allocates


cdef _bind():
    cdef bytes path = _lexbor.__file__.encode()
    cdef const char *missing = lexbor_bind(path)
    if missing != NULL:
        raise ImportError(f"selectolax's lexbor: {(<bytes>missing).decode(errors='replace')}")


_bind()


cdef class _Compiled:
    """One parsed selector list (it owns its CSS memory)."""

    cdef selector_list_t *list

    def __dealloc__(self):
        if self.list != NULL:
            css_selector_list_destroy_memory(self.list)
            self.list = NULL


cdef class _Engine:
    """A thread's CSS parser, matcher and compiled selectors."""

    cdef css_parser_t *parser
    cdef css_selectors_t *css_selectors
    cdef selectors_t *selectors
    cdef dict compiled

    def __cinit__(self):
        self.compiled = {}
        self.parser = css_parser_create()
        if self.parser == NULL or css_parser_init(self.parser, NULL) != STATUS_OK:
            raise SelectolaxError("Can't initialize CSS parser.")
        self.css_selectors = css_selectors_create()
        if self.css_selectors == NULL or css_selectors_init(self.css_selectors) != STATUS_OK:
            raise SelectolaxError("Can't initialize CSS selector.")
        css_parser_selectors_set(self.parser, self.css_selectors)
        self.selectors = selectors_create()
        if self.selectors == NULL or selectors_init(self.selectors) != STATUS_OK:
            raise SelectolaxError("Can't initialize selector.")

    def __dealloc__(self):
        self.compiled = None  # the lists (each owns its memory), then the engine
        if self.selectors != NULL:
            selectors_destroy(self.selectors, True)
        if self.parser != NULL:
            css_parser_destroy(self.parser, True)
        if self.css_selectors != NULL:
            css_selectors_destroy(self.css_selectors, True)

    cdef selector_list_t *compile(self, str query) except NULL:
        cdef object cached = self.compiled.get(query)
        cdef _Compiled found
        cdef bytes data
        cdef selector_list_t *parsed
        if cached is not None:
            return (<_Compiled>cached).list
        data = query.encode("UTF-8")
        # A memory pool of its own for this list (as selectolax parses), kept with it.
        css_parser_memory_set(self.parser, NULL)
        parsed = css_selectors_parse(
            self.parser, <const lxb_char_t *>PyBytes_AS_STRING(data), <size_t>PyBytes_GET_SIZE(data)
        )
        css_parser_memory_set(self.parser, NULL)
        if parsed == NULL:
            raise SelectolaxError("Can't parse CSS selector.")
        found = _Compiled.__new__(_Compiled)
        found.list = parsed
        if len(self.compiled) >= CACHE_SIZE:
            self.compiled.clear()
        self.compiled[query] = found
        return parsed


_local = threading.local()


cdef inline _Engine _engine():
    try:
        return <_Engine>_local.engine
    except AttributeError:
        engine = _local.engine = _Engine()
        return engine


# What a search collects: its matches' pointers (in document order), or only the first.
cdef struct _Search:
    lxb_node_t *skip
    lxb_node_t **found
    size_t count
    size_t size
    bint only_first
    bint failed


cdef lxb_status_t _collect(lxb_node_t *node, void *spec, void *ctx) noexcept nogil:
    cdef _Search *search = <_Search *>ctx
    cdef lxb_node_t **grown
    cdef size_t i
    if node == search.skip:
        return STATUS_OK
    if search.count == search.size:
        grown = <lxb_node_t **>malloc(2 * search.size * sizeof(lxb_node_t *))
        if grown == NULL:
            search.failed = True
            return STATUS_STOP
        for i in range(search.count):
            grown[i] = search.found[i]
        if search.size > _INLINE:
            free(search.found)
        search.found = grown
        search.size *= 2
    search.found[search.count] = node
    search.count += 1
    return STATUS_STOP if search.only_first else STATUS_OK


cdef inline bint _plain(LexborNode node):
    """Whether selectolax searches ``node`` itself (not a fragment root it stands for)."""
    return not node._is_fragment_root


cdef size_t _find(LexborNode root, str query, lxb_node_t **inline_found, _Search *search) except? 0:
    """Run ``query`` under ``root`` as selectolax's ``css`` / ``css_first`` do."""
    cdef _Engine engine = _engine()
    cdef selector_list_t *compiled = engine.compile(query)
    search.skip = root.parser._fragment_wrapper if root.parser is not None else NULL
    search.found = inline_found
    search.count = 0
    search.size = _INLINE
    search.failed = False
    selectors_opt_set(
        engine.selectors, OPT_DEFAULT if root._is_template_content else OPT_MATCH_ROOT
    )
    selectors_find(engine.selectors, root.node, compiled, _collect, search)
    selectors_opt_set(engine.selectors, OPT_MATCH_ROOT)
    if search.failed:
        _release(search)
        raise MemoryError()
    return search.count


cdef inline void _release(_Search *search) noexcept:
    if search.size > _INLINE:
        free(search.found)
    search.found = NULL


cdef object _text(LexborHTMLParser parser, lxb_node_t *node):
    """``node``'s text_lexbor(), whitespace-normalised (``" ".join(text.split())``)."""
    cdef size_t length = 0
    cdef lxb_char_t *text = node_text_content(node, &length)
    cdef size_t i
    cdef size_t out = 0
    cdef unsigned char c
    cdef bint space = False
    cdef bint ascii = True
    if text == NULL:
        return ""
    try:
        if length == 0:
            return ""
        for i in range(length):
            if text[i] >= 0x80:
                ascii = False
                break
        if not ascii:
            return " ".join(PyUnicode_DecodeUTF8(<char *>text, length, "replace").split())
        # ASCII: str.split()'s whitespace is \t \n \v \f \r, \x1c-\x1f and the space. The
        # text is lexbor's copy, given back below: it is compacted in place.
        for i in range(length):
            c = text[i]
            if c == 0x20 or (0x09 <= c <= 0x0d) or (0x1c <= c <= 0x1f):
                space = out != 0
            else:
                if space:
                    text[out] = 0x20
                    out += 1
                    space = False
                text[out] = c
                out += 1
        return PyUnicode_DecodeASCII(<char *>text, out, NULL)
    finally:
        document_destroy_text(parser.document, text)


def first_text(object node, str query):
    """The whitespace-normalised text of the first element ``query`` matches in ``node``
    (a ``LexborNode``, or a parser: its ``root``), ``node`` included; None when none does.

    Raises:
        SelectolaxError: ``query`` does not parse.
    """
    cdef LexborNode root
    cdef lxb_node_t *inline_found[_INLINE]
    cdef _Search search
    if isinstance(node, LexborNode):
        root = <LexborNode>node
    else:
        root = node.root
        if root is None:
            return None
    if not _plain(root) or root.parser is None:
        found = root.css_first(query)
        return None if found is None else " ".join(found.text_lexbor().split())
    search.only_first = True
    if _find(root, query, inline_found, &search) == 0:
        _release(&search)
        return None
    try:
        return _text(root.parser, search.found[0])
    finally:
        _release(&search)


def row_texts(LexborNode parent, dict index, str query):
    """For each row (``index``: a row element's ``mem_id`` to its position; the rows are
    children of ``parent``), the whitespace-normalised text of the first element ``query``
    matches inside it (the row included), or None: what ``Rows`` collects with
    ``parent.css(query)``.

    Raises:
        SelectolaxError: ``query`` does not parse.
    """
    cdef lxb_node_t *inline_found[_INLINE]
    cdef _Search search
    cdef size_t i
    cdef Py_ssize_t row
    cdef Py_ssize_t rows = len(index)
    cdef Py_ssize_t left = rows
    cdef lxb_node_t *top = parent.node
    cdef lxb_node_t *node
    cdef lxb_node_t *above
    cdef PyObject *position
    cdef list texts = [None] * rows
    if not _plain(parent) or parent.parser is None:
        return None
    search.only_first = False
    _find(parent, query, inline_found, &search)
    try:
        for i in range(search.count):
            node = search.found[i]
            if node == top:
                continue
            above = node_parent(node)
            while above != NULL and above != top:  # up to the child of parent that holds it
                node = above
                above = node_parent(node)
            if above == NULL:
                continue
            position = PyDict_GetItem(index, PyLong_FromSize_t(<size_t>node))
            if position == NULL:
                continue
            row = PyLong_AsSsize_t(<object>position)
            if row < 0 or row >= rows:
                raise IndexError("list index out of range")
            if texts[row] is None:
                texts[row] = _text(parent.parser, search.found[i])
                left -= 1
                if left == 0:
                    break
    finally:
        _release(&search)
    return texts


def _check_layout() -> None:
    """The declared layouts and constants read and do what selectolax's do (see the module's
    docstring): raises ImportError where they do not."""
    cdef LexborHTMLParser document = _lexbor.LexborHTMLParser(
        "<div><p> a </p><p>b <i>c</i></p><p></p></div>"
    )
    cdef LexborHTMLParser fragment = _lexbor.LexborHTMLParser("<p>a</p>", is_fragment=True)
    cdef LexborNode p = document.css_first("p")
    cdef LexborNode div = document.css_first("div")
    if <size_t>p.node != p.mem_id or p.parser is not document:
        raise ImportError("selectolax's LexborNode layout differs")
    if <size_t>node_parent(p.node) != div.mem_id:
        raise ImportError("lexbor's parent link differs")
    if p._is_fragment_root or p._is_template_content:
        raise ImportError("selectolax's LexborNode flags differ")
    if document._is_fragment or document._fragment_wrapper != NULL:
        raise ImportError("selectolax's LexborHTMLParser layout differs")
    if not fragment._is_fragment or fragment._fragment_wrapper == NULL:
        raise ImportError("selectolax's LexborHTMLParser layout differs")
    # The root matches itself (LXB_SELECTORS_OPT_MATCH_ROOT), the first match stops the walk,
    # the texts are selectolax's.
    if first_text(p, "p") != "a" or first_text(document, "p") != "a":
        raise ImportError("lexbor's selector options differ")
    index = {node.mem_id: i for i, node in enumerate(div.css("p"))}
    if row_texts(div, index, "p, i") != ["a", "b c", ""]:
        raise ImportError("lexbor's selector results differ")
    if first_text(document, "i") != document.css_first("i").text_lexbor():
        raise ImportError("lexbor's text differs")


_check_layout()

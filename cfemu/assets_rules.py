"""`_headers` and `_redirects` in the assets directory: parsing (with wrangler's limits) and matching."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

from .errors import JsException
from .http import Headers

__all__ = [
    "HeaderRule", "RedirectRule", "Redirects", "Invalid", "parse_headers", "parse_redirects", "apply_headers",
    "AssetRules", "HEADERS_FILE", "REDIRECTS_FILE", "IGNORED_FILES",
]

log = logging.getLogger("cfemu.assets")

HEADERS_FILE = "_headers"
REDIRECTS_FILE = "_redirects"
IGNORED_FILES = frozenset({HEADERS_FILE, REDIRECTS_FILE, ".assetsignore"})  # never uploaded, so never served

MAX_HEADER_RULES = 100
MAX_HEADER_LINE_LENGTH = 2000
MAX_REDIRECT_STATIC_RULES = 2000
MAX_REDIRECT_DYNAMIC_RULES = 100
MAX_REDIRECT_LINE_LENGTH = 1000
REDIRECT_STATUSES = frozenset({200, 301, 302, 303, 307, 308})

# Wrangler's messages for skipped lines (the text `wrangler deploy` prints under "Found invalid ... lines").
LINE_TOO_LONG = "Ignoring line {n} as it exceeds the maximum allowed length of {max}."
TOO_MANY_HEADER_RULES = "Maximum number of rules supported is {max}. Skipping remaining {left} lines of file."
NO_HEADERS = "No headers specified"
EXPECTED_PATH = "Expected a path beginning with at least one forward-slash"
EXPECTED_PAIR = "Expected a colon-separated header pair (e.g. name: value)"
NAME_WITH_SPACES = "Header name cannot include spaces"
NO_NAME = "No header name specified"
NO_VALUE = "No header value specified"
PATH_FIRST = "Path should come before header ({name}: {value})"
BAD_NAME = "Invalid header name '{name}'"
BAD_VALUE = "Invalid header value for '{name}'"
ONE_WILDCARD = "Multiple wildcards (*) are not supported in a single rule. Use a single wildcard or create separate rules."
SPLAT_TWICE = "Cannot combine wildcard (*) with :splat placeholder. The wildcard already captures as :splat."
DUPLICATE_PLACEHOLDER = "Placeholder :{name} is used more than once in this rule."
TOKEN_COUNT = "Expected exactly 2 or 3 whitespace-separated tokens. Got {n}."
ONLY_RELATIVE = "Only relative URLs are allowed. Skipping absolute URL {url}."
NO_PORTS = "Specifying ports is not supported. Skipping absolute URL {url}."
RELATIVE_OR_HTTPS = 'URLs should either be relative (e.g. begin with a forward-slash), or use HTTPS (e.g. begin with "https://").'
TOO_MANY_STATIC = "Maximum number of static rules supported is {max}. Skipping line."
TOO_MANY_DYNAMIC = "Maximum number of dynamic rules supported is {max}. Skipping remaining {left} lines of file."
BAD_STATUS = "Valid status codes are 200, 301, 302 (default), 303, 307, or 308. Got {status}."
INFINITE_LOOP = ("Infinite loop detected in this rule and has been ignored. This will cause a redirect to strip "
                 "`.html` or `/index` and end up triggering this rule again. Please fix or remove this rule to "
                 "silence this warning.")
DUPLICATE_RULE = "Ignoring duplicate rule for path {path}."
PROXY_RELATIVE = "Proxy (200) redirects can only point to relative paths. Got {to}"

_ABSOLUTE = re.compile(r"^https://+(?P<host>[^/]+)/?(?P<path>.*)$")
_PORT = re.compile(r".*:\d+$")
_PROBABLY_A_PATH = re.compile(r"^([^\s]+://|/)")
_PLACEHOLDER = re.compile(r":([A-Za-z]\w*)")
_HOST_PLACEHOLDER = re.compile(r"(?<=^https://)([^/]*)")
_SCHEME = re.compile(r"^\w+://")


@dataclass(frozen=True)
class Invalid:
    """One skipped line: where, what it said, and why (wrangler's message)."""

    line_number: int
    line: str
    message: str


def _compile(pattern: str) -> re.Pattern[str]:
    """A rule's path (or https://host/path) as a regex: `*` captures `splat`, `:name` one segment (host: one label)."""
    out, host_end = [], -1
    absolute = pattern.startswith("https://")
    if absolute:
        host_end = pattern.find("/", len("https://"))
        host_end = len(pattern) if host_end < 0 else host_end
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append("(?P<splat>.*)")
            i += 1
            continue
        found = _PLACEHOLDER.match(pattern, i) if ch == ":" else None
        if found:
            segment = "[^/.]+" if absolute and i < host_end else "[^/]+"
            out.append(f"(?P<{found.group(1)}>{segment})")
            i = found.end()
            continue
        out.append(re.escape(ch))
        i += 1
    return re.compile("^" + "".join(out) + "$")


def _check_pattern(pattern: str) -> str | None:
    """Why this rule pattern cannot be compiled (two splats, a placeholder twice), or None."""
    if pattern.count("*") > 1:
        return ONE_WILDCARD
    if "*" in pattern and re.search(r":splat\b", pattern, re.IGNORECASE):
        return SPLAT_TWICE
    names = _PLACEHOLDER.findall(pattern) + (["splat"] if "*" in pattern else [])
    for name in names:
        if names.count(name) > 1:
            return DUPLICATE_PLACEHOLDER.format(name=name)
    return None


def _replace(text: str, groups: dict[str, str]) -> str:
    """Substitute `:name` (whole names only) with what the rule captured; unknown names stay as written."""
    return _PLACEHOLDER.sub(lambda m: groups.get(m.group(1), m.group(0)), text)


def _validate_url(token: str, *, only_relative: bool, no_ports: bool, keep_query: bool) -> tuple[str | None, str | None]:
    """A rule URL normalised the way wrangler does it, or the reason it is rejected."""
    absolute = _ABSOLUTE.match(token)
    if absolute:
        if only_relative:
            return None, ONLY_RELATIVE.format(url=token)
        if no_ports and _PORT.match(absolute.group("host")):
            return None, NO_PORTS.format(url=token)
        return "https://" + absolute.group("host") + _pathname("/" + absolute.group("path"), keep_query), None
    if only_relative and not token.startswith("/"):
        token = "/" + token
    if token.startswith("/"):
        return _pathname(token, keep_query), None
    return None, ("URLs should begin with a forward-slash." if only_relative else RELATIVE_OR_HTTPS)


# What a URL parser leaves unescaped in a path: the rule must read as the pathname a request arrives with.
_PATH_SAFE = "!$&'()*+,;=:@/-._~%[]^|\\"


def _pathname(path: str, keep_query: bool) -> str:
    """The path (and, for destinations, query and fragment) as a URL parser gives it: dot segments resolved,
    non-ASCII percent-encoded."""
    parts = urlsplit(urljoin("https://host/", "/" + path.lstrip("/")))
    out = quote(parts.path or "/", safe=_PATH_SAFE)
    if keep_query:
        out += ("?" + parts.query if parts.query else "") + ("#" + parts.fragment if parts.fragment else "")
    return out


def request_pathname(path: str) -> str:
    """A request's path as a URL parser gives it (percent-encoded), whether it arrived encoded or decoded."""
    return quote(path or "/", safe=_PATH_SAFE)


# -- _headers ------------------------------------------------------------------------------------


@dataclass
class HeaderRule:
    """One `_headers` block: a URL pattern, headers to set and headers to remove (`! Name`)."""

    path: str
    set: dict[str, str] = field(default_factory=dict)
    unset: list[str] = field(default_factory=list)
    line_number: int = 0
    regex: re.Pattern[str] | None = None


def parse_headers(text: str, *, max_rules: int = MAX_HEADER_RULES,
                  max_line_length: int = MAX_HEADER_LINE_LENGTH) -> tuple[list[HeaderRule], list[Invalid]]:
    """Parse a `_headers` file the way wrangler does: valid rules in order, and the lines it skipped."""
    lines = text.removeprefix("\ufeff").split("\n")
    rules: list[HeaderRule] = []
    invalid: list[Invalid] = []
    rule: HeaderRule | None = None
    rule_line = ""

    def close() -> None:
        if rule is None:
            return
        if rule.set or rule.unset:
            rules.append(rule)
        else:
            invalid.append(Invalid(rule.line_number, rule_line, NO_HEADERS))

    for number, line in _rule_lines(lines, max_line_length, invalid):
        if _PROBABLY_A_PATH.match(line):
            close()
            rule = None
            if len(rules) >= max_rules:
                invalid.append(Invalid(number, line, TOO_MANY_HEADER_RULES.format(max=max_rules,
                                                                                   left=len(lines) - number + 1)))
                break
            path, error = _validate_url(line, only_relative=False, no_ports=True, keep_query=False)
            error = error or _check_pattern(path)
            if error:
                invalid.append(Invalid(number, line, error))
                continue
            rule, rule_line = HeaderRule(path=path, line_number=number, regex=_compile(path)), line
            continue
        if ":" not in line:
            if rule is not None and line.startswith("! "):
                rule.unset.append(line[2:].strip().lower())
            else:
                invalid.append(Invalid(number, line, EXPECTED_PATH if rule is None else EXPECTED_PAIR))
            continue
        raw_name, _, raw_value = line.partition(":")
        name, value = raw_name.strip().lower(), raw_value.strip()
        error = (NAME_WITH_SPACES if " " in name else NO_NAME if not name else NO_VALUE if not value
                 else PATH_FIRST.format(name=name, value=value) if rule is None else None)
        if error is None:
            try:
                Headers._check(name, value)
            except JsException:
                error = BAD_NAME.format(name=name) if not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9a-z]+", name) \
                    else BAD_VALUE.format(name=name)
        if error:
            invalid.append(Invalid(number, line, error))
            continue
        assert rule is not None
        rule.set[name] = f"{rule.set[name]}, {value}" if name in rule.set else value
    close()
    return rules, invalid


def apply_headers(rules: list[HeaderRule], url: str, headers: Headers) -> None:
    """Apply every matching rule in file order: `!` removes, the first rule to set a name replaces, later ones append."""
    parts = urlsplit(url)
    path = request_pathname(parts.path)
    seen: set[str] = set()
    for rule in rules:
        assert rule.regex is not None
        # An absolute rule matches on host + path whatever the request's scheme and port (as Cloudflare does).
        subject = f"https://{parts.hostname or ''}{path}" if rule.path.startswith("https://") else path
        found = rule.regex.match(subject)
        if not found:
            continue
        groups = {k: v for k, v in found.groupdict().items() if v is not None}
        for name in rule.unset:
            headers.delete(name)
        for name, value in rule.set.items():
            try:
                if name in seen:
                    headers.append(name, _replace(value, groups))
                else:
                    headers.set(name, _replace(value, groups))
                    seen.add(name)
            except JsException:  # a placeholder captured something no header value may hold
                log.warning("_headers: could not set %s for %s; skipped", name, path)


# -- _redirects ----------------------------------------------------------------------------------


@dataclass
class RedirectRule:
    """One `_redirects` line: source pattern, destination, status (200 = serve that asset at this URL)."""

    source: str
    to: str
    status: int
    line_number: int
    regex: re.Pattern[str] | None = None


@dataclass
class Redirects:
    """Parsed `_redirects`: exact-path rules (checked first), then pattern rules in file order."""

    static: dict[str, RedirectRule] = field(default_factory=dict)
    dynamic: list[RedirectRule] = field(default_factory=list)

    def match(self, path: str) -> tuple[RedirectRule, str] | None:
        """The rule for this URL path and its destination with splat/placeholders filled in."""
        path = request_pathname(path)
        rule = self.static.get(path)
        if rule is not None:
            return rule, rule.to
        for rule in self.dynamic:
            assert rule.regex is not None
            found = rule.regex.match(path)
            if found:
                groups = {k: v for k, v in found.groupdict().items() if v is not None}
                target = _replace(rule.to, groups).strip()
                if not _SCHEME.match(target):
                    target = re.sub(r"/+", "/", target)  # an empty splat must not make `//host`-like paths
                return rule, target
        return None

    def __len__(self) -> int:
        return len(self.static) + len(self.dynamic)


def parse_redirects(text: str, *, html_handling: str = "auto-trailing-slash",
                    max_static: int = MAX_REDIRECT_STATIC_RULES, max_dynamic: int = MAX_REDIRECT_DYNAMIC_RULES,
                    max_line_length: int = MAX_REDIRECT_LINE_LENGTH) -> tuple[Redirects, list[Invalid]]:
    """Parse a `_redirects` file the way wrangler does: rules, and the lines it skipped with why."""
    lines = text.removeprefix("\ufeff").split("\n")
    redirects = Redirects()
    invalid: list[Invalid] = []
    seen: set[str] = set()
    static_count = dynamic_count = 0
    static_allowed = True  # a static-looking rule after the first dynamic one is matched in order, as dynamic
    for number, line in _rule_lines(lines, max_line_length, invalid):
        tokens = line.split()
        for index, token in enumerate(tokens):
            if index >= 2 and token.startswith("#"):  # an inline comment (a `#` in the destination is a fragment)
                tokens = tokens[:index]
                break
        if not 2 <= len(tokens) <= 3:
            invalid.append(Invalid(number, line, TOKEN_COUNT.format(n=len(tokens))))
            continue
        source_token, to_token, status_token = (tokens + ["302"])[:3]
        source, error = _validate_url(source_token, only_relative=True, no_ports=True, keep_query=False)
        if source is None:
            invalid.append(Invalid(number, line, error or ""))
            continue
        is_static = static_allowed and "*" not in source and not _PLACEHOLDER.search(source)
        if is_static:
            static_count += 1
            if static_count > max_static:
                invalid.append(Invalid(number, line, TOO_MANY_STATIC.format(max=max_static)))
                continue
        else:
            dynamic_count += 1
            static_allowed = False
            if dynamic_count > max_dynamic:
                invalid.append(Invalid(number, line, TOO_MANY_DYNAMIC.format(max=max_dynamic,
                                                                             left=len(lines) - number + 1)))
                break
        to, error = _validate_url(to_token, only_relative=False, no_ports=False, keep_query=True)
        if to is None:
            invalid.append(Invalid(number, line, error or ""))
            continue
        status = int(status_token) if status_token.isdigit() else None
        if status not in REDIRECT_STATUSES:
            invalid.append(Invalid(number, line, BAD_STATUS.format(status=status_token)))
            continue
        relative = not _ABSOLUTE.match(to)
        to_index = re.search(r"/index(\.html)?$", to) is not None
        loops = (source.endswith("/*") and to_index) or (source.endswith("/") and to_index and html_handling != "none")
        if relative and loops:
            invalid.append(Invalid(number, line, INFINITE_LOOP))
            continue
        if source in seen:
            invalid.append(Invalid(number, line, DUPLICATE_RULE.format(path=source)))
            continue
        if status == 200 and not relative:
            invalid.append(Invalid(number, line, PROXY_RELATIVE.format(to=to)))
            continue
        error = None if is_static else _check_pattern(source)
        if error:
            invalid.append(Invalid(number, line, error))
            continue
        seen.add(source)
        rule = RedirectRule(source, to, status, number)
        if is_static:
            redirects.static[source] = rule
        else:
            rule.regex = _compile(source)
            redirects.dynamic.append(rule)
    return redirects, invalid


# -- loading ---------------------------------------------------------------------------------------


class AssetRules:
    """The parsed `_headers`/`_redirects` of one assets directory, re-read when either file changes."""

    def __init__(self, root: Path, html_handling: str) -> None:
        self.root = root
        self.html_handling = html_handling
        self._stamp: tuple | None = None
        self.headers: list[HeaderRule] = []
        self.redirects = Redirects()

    def _file_stamp(self, name: str) -> tuple | None:
        try:
            st = (self.root / name).stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def current(self) -> AssetRules:
        """These rules, re-parsed first if a file was added, edited or removed since the last parse."""
        stamp = (self._file_stamp(HEADERS_FILE), self._file_stamp(REDIRECTS_FILE))
        if stamp != self._stamp:
            self._stamp = stamp
            self.headers = self._load(HEADERS_FILE, lambda text: parse_headers(text))
            self.redirects = self._load(REDIRECTS_FILE, lambda text: parse_redirects(text, html_handling=self.html_handling)) \
                or Redirects()
        return self

    def reload(self) -> None:
        """Forget the parsed files: the next request parses them again."""
        self._stamp = None

    def _load(self, name: str, parse):  # noqa: ANN001, ANN202 - one of the two parse_* functions
        path = self.root / name
        try:
            text = path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return [] if name == HEADERS_FILE else None
        except OSError as e:
            log.warning("%s: could not read (%s); its rules are ignored", path, e)
            return [] if name == HEADERS_FILE else None
        rules, invalid = parse(text)
        kind = "header" if name == HEADERS_FILE else "redirect"
        log.info("%s: parsed %d valid %s rule%s", path, len(rules), kind, "" if len(rules) == 1 else "s")
        for bad in invalid:
            log.warning("%s:%d: %s; skipped: %s", path, bad.line_number, bad.message, bad.line)
        return rules


def _rule_lines(lines: list[str], max_line_length: int, invalid: list[Invalid]):
    """(line number, stripped line) for each line that is not blank or a comment; an over-long line is
    recorded in `invalid` instead, as wrangler skips it."""
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if len(line) > max_line_length:
            invalid.append(Invalid(number, line[:80] + "...", LINE_TOO_LONG.format(n=number, max=max_line_length)))
            continue
        yield number, line

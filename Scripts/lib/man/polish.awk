# Scripts/lib/man/polish.awk: turns swift-argument-parser's generated mdoc into a finished page.
# Variables: tool (gmemfs or gmemctl), tail (an mdoc file with FILES, EXIT STATUS, EXAMPLES,
# SEE ALSO), docdir (where the docs are installed).
# - a blank line (mandoc: "Empty input line") becomes .Pp;
# - lines indented by two spaces (commands in the --help text) become a literal display, so
#   they do not run into the prose;
# - "docs/" points at the installed docs;
# - gmemfs has no subcommands: its SYNOPSIS "subcommand" and the generated "help" entry go;
# - the generated EXIT STATUS section is replaced by the tail.
function flush() { if (literal) { print ".Ed"; literal = 0 } }
/^\.Sh "EXIT STATUS"/ { flush(); while ((getline line < tail) > 0) print line; done = 1; next }
done { next }
tool == "gmemfs" && /^\.Ar subcommand$/ { next }
tool == "gmemfs" && /^\.It Em help$/ { skipping = 1; next }
skipping { if (/^\.El$/) skipping = 0; next }
/^$/ { flush(); print ".Pp"; next }
/^  / && !/^\./ {
	if (!literal) { print ".Bd -literal -offset indent"; literal = 1 }
	sub(/^  /, ""); print; next
}
{ flush(); gsub(/See docs\/ for/, "See " docdir " for"); gsub(/ docs\//, " " docdir "/"); print }
END { flush() }

module penpot-operator.local/harness/pause

go 1.26.0

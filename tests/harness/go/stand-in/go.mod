module penpot-operator.local/harness/stand-in

go 1.26.0

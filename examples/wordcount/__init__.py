"""Word count as a small map-reduce over EntroQ.

    python -m examples.wordcount [--url grpc://localhost:37706] FILE...

A producer inserts one map task per file; mapper worker processes count words and
emit partial counts; one reducer process folds them into a result task. Every fold
is one atomic modify (delete the partial, change the result at its exact version),
so each file is counted exactly once even if workers die and work is redone.
"""

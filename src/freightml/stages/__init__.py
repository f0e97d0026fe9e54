"""The lifecycle stages: one module per stage, each a plain function over paths plus a typed
result.

    ingest -> validate -> features -> train -> evaluate -> register        (training)
    ingest -> validate -> score                                            (batch scoring)

A stage reads its inputs from files, calls the library, writes its outputs and returns its
result. Results that a later stage reads (the facts' description, the validation summary,
the evaluation) are typed (:class:`freightml.stages.result.StageResult`) and saved and
loaded through their own ``save``/``load``, so no stage parses another's files by hand.
Nothing here knows about Kubeflow: ``components/`` wraps each stage function.
"""

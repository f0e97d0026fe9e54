"""The demos that play a whole scenario on one machine: the monitoring demo
(:mod:`freightml.demo.monitor`: requests, later facts with a shift, a monitoring run) and
the closed retraining loop (:mod:`freightml.demo.loop`: day by day, with the predictor,
the collector, monitoring and retraining all real). They sit above the library's floors:
they start services and launch pipelines."""

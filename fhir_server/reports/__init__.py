"""Health-department summaries: visit facts kept beside the resources, aggregates, Measure/MeasureReport."""

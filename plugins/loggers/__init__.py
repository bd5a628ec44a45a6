"""Built-in experiment loggers: TensorBoard, the plain-text log, and MLflow and W&B as optional extras."""

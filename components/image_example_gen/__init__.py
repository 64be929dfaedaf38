from components.image_example_gen.component import ImageExampleGen, IngestReport  # noqa: F401

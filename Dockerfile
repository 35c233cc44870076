# gpuetl on the official RAPIDS image of the pinned release (cuDF, cuGraph, Dask-CUDA, RMM, CuPy included).
#   docker build -t gpuetl .
#   docker run --gpus all --rm -it -v "$PWD/data:/opt/gpuetl/data" --env-file .env gpuetl gpuetl doctor
ARG RAPIDS_VERSION=26.10
ARG CUDA_VERSION=13.0
ARG PYTHON_VERSION=3.12
FROM rapidsai/base:${RAPIDS_VERSION}-cuda${CUDA_VERSION}-py${PYTHON_VERSION}

WORKDIR /opt/gpuetl
USER root
COPY --chown=1001:1001 . .
USER 1001
# torch (CUDA build), torch-geometric and xgboost are not in the RAPIDS image; pip brings them (the train extra).
RUN pip install --no-cache-dir "torch>=2.4" "torch-geometric>=2.5" "xgboost>=2.1" \
 && pip install --no-cache-dir -e ".[dev,train,s3]"
CMD ["gpuetl", "doctor"]

# Small static image: a musl build of the operator on distroless/static (CA certificates,
# a nonroot user, no shell).
#   docker build -t provider-integration-operator:0.2.0 .
FROM rust:1-alpine AS build
RUN apk add --no-cache musl-dev make
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin provider-integration-operator \
 && cp target/release/provider-integration-operator /provider-integration-operator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /provider-integration-operator /provider-integration-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/provider-integration-operator"]
CMD ["run"]

# The image .ci/image builds with buildah, for users with a container engine: the operator as one
# statically linked binary (gnu target, crt-static; names are resolved in Rust, so no NSS is
# needed), CA certificates and a nonroot user, and nothing else.
#   docker build -t provider-integration-operator:0.2.0 .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked \
      --target x86_64-unknown-linux-gnu --bin provider-integration-operator \
 && mkdir -p /rootfs/etc/ssl/certs /rootfs/home/nonroot && chown 65532:65532 /rootfs/home/nonroot \
 && cp target/x86_64-unknown-linux-gnu/release/provider-integration-operator /rootfs/ \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > /rootfs/etc/passwd \
 && printf 'root:x:0:\nnonroot:x:65532:\n' > /rootfs/etc/group

FROM scratch
COPY --from=build /rootfs/ /
USER 65532:65532
WORKDIR /home/nonroot
EXPOSE 8080
ENTRYPOINT ["/provider-integration-operator"]
CMD ["run"]

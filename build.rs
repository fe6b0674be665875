//! Compiles every `proto/strongroom/v1/*.proto` with protox (a pure-Rust
//! protobuf compiler), so building needs no system `protoc`. The encoded
//! descriptor set is kept for gRPC reflection.

use std::{env, fs, path::PathBuf};

use prost::Message;

/// Messages that carry shares, keys or tokens: they get no derived `Debug`
/// (src/lib.rs gives them one that prints no field), so a secret cannot reach
/// a log through `{:?}`. Keep in step with `redacted_debug!` in src/lib.rs.
const SECRET_MESSAGES: &[&str] = &[
    ".strongroom.v1.InitResponse",
    ".strongroom.v1.UnsealRequest",
    ".strongroom.v1.RekeyUpdateRequest",
    ".strongroom.v1.RekeyUpdateResponse",
    ".strongroom.v1.RekeyVerifyUpdateRequest",
    ".strongroom.v1.RotateRootUpdateRequest",
    ".strongroom.v1.GenerateRootInitRequest",
    ".strongroom.v1.GenerateRootUpdateRequest",
    ".strongroom.v1.GenerateRootUpdateResponse",
    // Nonces: whoever holds one can confirm, verify or cancel an operation.
    ".strongroom.v1.InitConfirmRequest",
    ".strongroom.v1.RekeyConfirmRequest",
    ".strongroom.v1.RekeyStatusResponse",
    ".strongroom.v1.QuorumStatus",
    ".strongroom.v1.RekeyCancelRequest",
    ".strongroom.v1.RotateRootCancelRequest",
    ".strongroom.v1.GenerateRootCancelRequest",
    ".strongroom.v1.AuditHashRequest",
    // Tokens.
    ".strongroom.v1.CreateTokenResponse",
    ".strongroom.v1.LookupTokenRequest",
    ".strongroom.v1.RenewTokenRequest",
    ".strongroom.v1.RevokeTokenRequest",
    // A KMS provider's credentials.
    ".strongroom.v1.ProviderCredentials",
    ".strongroom.v1.WriteProviderRequest",
    // Secret values.
    ".strongroom.v1.PutRequest",
    ".strongroom.v1.GetResponse",
    // Plaintexts and data keys of the Keys service.
    ".strongroom.v1.EncryptRequest",
    ".strongroom.v1.DecryptResponse",
    ".strongroom.v1.GenerateDataKeyResponse",
    ".strongroom.v1.EncryptItem",
    ".strongroom.v1.BatchEncryptRequest",
    ".strongroom.v1.DecryptResult",
    ".strongroom.v1.BatchDecryptResponse",
    // Contexts (authenticated data, often naming a tenant) and accessor
    // fields, into which a token may be pasted by mistake.
    ".strongroom.v1.DecryptRequest",
    ".strongroom.v1.RewrapRequest",
    ".strongroom.v1.GenerateDataKeyRequest",
    ".strongroom.v1.DecryptItem",
    ".strongroom.v1.BatchDecryptRequest",
    ".strongroom.v1.RevokeAccessorRequest",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = "proto/strongroom/v1";
    println!("cargo:rerun-if-changed={dir}");
    let mut protos: Vec<PathBuf> = fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    protos.retain(|path| path.extension().is_some_and(|ext| ext == "proto"));
    protos.sort();
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }
    let descriptors = protox::compile(&protos, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("strongroom_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .skip_debug(SECRET_MESSAGES.iter().copied())
        .compile_fds(descriptors)?;
    Ok(())
}

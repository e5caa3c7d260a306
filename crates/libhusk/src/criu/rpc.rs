//! CRIU's RPC messages (proto2), written from the schema CRIU ships (`rpc.proto` beside this
//! file) with prost's derive: no code generation at build time, so no `protoc` on the build
//! machine. Only the fields husk sends or reads are declared; prost skips the others on decode.
//! `schema_matches_rpc_proto` checks every declared field's name, tag, type and label against
//! `rpc.proto`.

/// proto: criu_page_server_info
#[derive(Clone, PartialEq, prost::Message)]
pub struct PageServerInfo {
    #[prost(string, optional, tag = "1")]
    pub address: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub port: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    pub pid: Option<i32>,
    #[prost(int32, optional, tag = "4")]
    pub fd: Option<i32>,
}

/// proto: ext_mount_map
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExtMountMap {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, required, tag = "2")]
    pub val: String,
}

/// proto: join_namespace
#[derive(Clone, PartialEq, prost::Message)]
pub struct JoinNamespace {
    #[prost(string, required, tag = "1")]
    pub ns: String,
    #[prost(string, required, tag = "2")]
    pub ns_file: String,
}

/// proto: inherit_fd
#[derive(Clone, PartialEq, prost::Message)]
pub struct InheritFd {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(int32, required, tag = "2")]
    pub fd: i32,
}

/// proto: cgroup_root
#[derive(Clone, PartialEq, prost::Message)]
pub struct CgroupRoot {
    #[prost(string, optional, tag = "1")]
    pub ctrl: Option<String>,
    #[prost(string, required, tag = "2")]
    pub path: String,
}

/// proto: criu_cg_mode
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum CgMode {
    Ignore = 0,
    CgNone = 1,
    Props = 2,
    Soft = 3,
    Full = 4,
    Strict = 5,
    Default = 6,
}

/// proto: criu_opts
#[derive(Clone, PartialEq, prost::Message)]
pub struct Opts {
    #[prost(int32, required, tag = "1")]
    pub images_dir_fd: i32,
    #[prost(int32, optional, tag = "2")]
    pub pid: Option<i32>,
    #[prost(bool, optional, tag = "3")]
    pub leave_running: Option<bool>,
    #[prost(bool, optional, tag = "4")]
    pub ext_unix_sk: Option<bool>,
    #[prost(bool, optional, tag = "5")]
    pub tcp_established: Option<bool>,
    #[prost(bool, optional, tag = "6")]
    pub evasive_devices: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    pub shell_job: Option<bool>,
    #[prost(bool, optional, tag = "8")]
    pub file_locks: Option<bool>,
    #[prost(int32, optional, tag = "9")]
    pub log_level: Option<i32>,
    #[prost(string, optional, tag = "10")]
    pub log_file: Option<String>,
    #[prost(message, optional, tag = "11")]
    pub ps: Option<PageServerInfo>,
    #[prost(bool, optional, tag = "12")]
    pub notify_scripts: Option<bool>,
    #[prost(string, optional, tag = "13")]
    pub root: Option<String>,
    #[prost(string, optional, tag = "14")]
    pub parent_img: Option<String>,
    #[prost(bool, optional, tag = "15")]
    pub track_mem: Option<bool>,
    #[prost(bool, optional, tag = "16")]
    pub auto_dedup: Option<bool>,
    #[prost(int32, optional, tag = "17")]
    pub work_dir_fd: Option<i32>,
    #[prost(bool, optional, tag = "18")]
    pub link_remap: Option<bool>,
    #[prost(message, repeated, tag = "23")]
    pub ext_mnt: Vec<ExtMountMap>,
    #[prost(bool, optional, tag = "24")]
    pub manage_cgroups: Option<bool>,
    #[prost(message, repeated, tag = "25")]
    pub cg_root: Vec<CgroupRoot>,
    #[prost(bool, optional, tag = "26")]
    pub rst_sibling: Option<bool>,
    #[prost(message, repeated, tag = "27")]
    pub inherit_fd: Vec<InheritFd>,
    #[prost(enumeration = "CgMode", optional, tag = "34")]
    pub manage_cgroups_mode: Option<i32>,
    #[prost(string, repeated, tag = "37")]
    pub external: Vec<String>,
    #[prost(uint32, optional, tag = "38")]
    pub empty_ns: Option<u32>,
    #[prost(message, repeated, tag = "39")]
    pub join_ns: Vec<JoinNamespace>,
    #[prost(string, optional, tag = "44")]
    pub freeze_cgroup: Option<String>,
    #[prost(bool, optional, tag = "46")]
    pub tcp_skip_in_flight: Option<bool>,
    #[prost(bool, optional, tag = "48")]
    pub lazy_pages: Option<bool>,
    #[prost(int32, optional, tag = "49")]
    pub status_fd: Option<i32>,
    #[prost(bool, optional, tag = "50")]
    pub orphan_pts_master: Option<bool>,
    #[prost(string, optional, tag = "51")]
    pub config_file: Option<String>,
    #[prost(bool, optional, tag = "52")]
    pub tcp_close: Option<bool>,
    #[prost(string, optional, tag = "53")]
    pub lsm_profile: Option<String>,
    #[prost(string, optional, tag = "63")]
    pub lsm_mount_context: Option<String>,
}

/// proto: criu_restore_resp
#[derive(Clone, PartialEq, prost::Message)]
pub struct RestoreResp {
    #[prost(int32, required, tag = "1")]
    pub pid: i32,
}

/// proto: criu_notify
#[derive(Clone, PartialEq, prost::Message)]
pub struct Notify {
    #[prost(string, optional, tag = "1")]
    pub script: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub pid: Option<i32>,
}

/// proto: criu_req_type
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ReqType {
    Empty = 0,
    Dump = 1,
    Restore = 2,
    Check = 3,
    PreDump = 4,
    PageServer = 5,
    Notify = 6,
    CpuinfoDump = 7,
    CpuinfoCheck = 8,
    FeatureCheck = 9,
    Version = 10,
}

/// proto: criu_features
#[derive(Clone, PartialEq, prost::Message)]
pub struct Features {
    #[prost(bool, optional, tag = "1")]
    pub mem_track: Option<bool>,
    #[prost(bool, optional, tag = "2")]
    pub lazy_pages: Option<bool>,
}

/// proto: criu_req
#[derive(Clone, PartialEq, prost::Message)]
pub struct Req {
    #[prost(enumeration = "ReqType", required, tag = "1")]
    pub r#type: i32,
    #[prost(message, optional, tag = "2")]
    pub opts: Option<Opts>,
    #[prost(bool, optional, tag = "3")]
    pub notify_success: Option<bool>,
    #[prost(message, optional, tag = "5")]
    pub features: Option<Features>,
}

/// proto: criu_resp
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resp {
    #[prost(enumeration = "ReqType", required, tag = "1")]
    pub r#type: i32,
    #[prost(bool, required, tag = "2")]
    pub success: bool,
    #[prost(message, optional, tag = "4")]
    pub restore: Option<RestoreResp>,
    #[prost(message, optional, tag = "5")]
    pub notify: Option<Notify>,
    #[prost(int32, optional, tag = "7")]
    pub cr_errno: Option<i32>,
    #[prost(message, optional, tag = "8")]
    pub features: Option<Features>,
    #[prost(string, optional, tag = "9")]
    pub cr_errmsg: Option<String>,
    #[prost(message, optional, tag = "10")]
    pub version: Option<Version>,
}

/// proto: criu_version
#[derive(Clone, PartialEq, prost::Message)]
pub struct Version {
    #[prost(int32, required, tag = "1")]
    pub major_number: i32,
    #[prost(int32, required, tag = "2")]
    pub minor_number: i32,
    #[prost(string, optional, tag = "3")]
    pub gitid: Option<String>,
    #[prost(int32, optional, tag = "4")]
    pub sublevel: Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use std::collections::HashMap;

    /// (message or enum name) → (field or value name) → (label, type, tag), from rpc.proto.
    fn proto_schema() -> HashMap<String, HashMap<String, (String, String, u32)>> {
        let text = include_str!("rpc.proto");
        let mut out: HashMap<String, HashMap<String, (String, String, u32)>> = HashMap::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            let line = line.split("//").next().unwrap_or("").split("/*").next().unwrap_or("").trim();
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["message" | "enum", name, ..] => current = Some(name.to_string()),
                ["}" | "};"] => current = None,
                [label, typ, name, "=", tag, ..] if current.is_some() => {
                    let tag: u32 = tag.trim_end_matches(';').parse().unwrap();
                    let entry = out.entry(current.clone().unwrap()).or_default();
                    entry.insert(name.to_string(), (label.to_string(), typ.to_string(), tag));
                }
                [name, "=", value] if current.is_some() => {
                    let tag: u32 = value.trim_end_matches(';').parse().unwrap();
                    let entry = out.entry(current.clone().unwrap()).or_default();
                    entry.insert(name.to_string(), ("enum".into(), "enum".into(), tag));
                }
                _ => {}
            }
        }
        out
    }

    fn proto_type(rust_kind: &str) -> &str {
        match rust_kind {
            "int32" | "uint32" | "bool" | "string" => rust_kind,
            _ => "",
        }
    }

    /// Every `#[prost(...)]` field and enum value in this file against rpc.proto, by the
    /// `/// proto: NAME` line above each type.
    #[test]
    fn schema_matches_rpc_proto() {
        let schema = proto_schema();
        let src = include_str!("rpc.rs");
        let src = &src[..src.find("#[cfg(test)]").unwrap()];
        let mut current: Option<&HashMap<String, (String, String, u32)>> = None;
        let mut pending: Option<(String, String, u32)> = None;
        let mut checked = 0;
        for line in src.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix("/// proto: ") {
                current = Some(schema.get(name).unwrap_or_else(|| panic!("rpc.proto has no {name}")));
            } else if let Some(attr) = line.strip_prefix("#[prost(").and_then(|a| a.strip_suffix(")]")) {
                let parts: Vec<&str> = attr.split(", ").collect();
                let tag: u32 = parts[2].trim_start_matches("tag = \"").trim_end_matches('"').parse().unwrap();
                pending = Some((parts[0].to_string(), parts[1].to_string(), tag));
            } else if let Some(rest) = line.strip_prefix("pub ") {
                let Some((kind, label, tag)) = pending.take() else { continue };
                let name = rest.split(':').next().unwrap().trim_start_matches("r#");
                let fields = current.expect("a field outside a proto type");
                let (plabel, ptype, ptag) = fields.get(name).unwrap_or_else(|| panic!("rpc.proto lacks field {name}"));
                assert_eq!(*ptag, tag, "tag of {name}");
                assert_eq!(plabel, &label, "label of {name}");
                if kind.starts_with("enumeration") {
                    assert!(ptype.starts_with("criu_"), "{name} is an enum in rpc.proto");
                } else if kind != "message" {
                    assert_eq!(ptype, proto_type(&kind), "type of {name}");
                }
                checked += 1;
            } else if let Some((name, value)) = line.trim_end_matches(',').split_once(" = ") {
                let Some(fields) = current else { continue };
                let Ok(value) = value.parse::<u32>() else { continue };
                let upper = name.chars().fold(String::new(), |mut s, c| {
                    if c.is_uppercase() && !s.is_empty() {
                        s.push('_');
                    }
                    s.push(c.to_ascii_uppercase());
                    s
                });
                let (_, _, ptag) = fields.get(&upper).unwrap_or_else(|| panic!("rpc.proto lacks enum value {upper}"));
                assert_eq!(*ptag, value, "value of {upper}");
                checked += 1;
            }
        }
        assert!(checked > 60, "only {checked} fields checked");
    }

    #[test]
    fn request_round_trips_and_encodes_as_proto2() {
        let req = Req {
            r#type: ReqType::Dump as i32,
            opts: Some(Opts {
                images_dir_fd: 7,
                pid: Some(42),
                leave_running: Some(true),
                ext_mnt: vec![ExtMountMap { key: "/a".into(), val: "/b".into() }],
                manage_cgroups_mode: Some(CgMode::Soft as i32),
                ..Default::default()
            }),
            ..Default::default()
        };
        let bytes = req.encode_to_vec();
        // type = 1 (field 1, varint), then opts (field 2, length-delimited) starting with
        // images_dir_fd = 7 (field 1, varint) and pid = 42 (field 2, varint).
        assert_eq!(&bytes[..2], &[0x08, 0x01]);
        assert_eq!(bytes[2], 0x12);
        assert_eq!(&bytes[4..8], &[0x08, 7, 0x10, 42]);
        assert_eq!(Req::decode(bytes.as_slice()).unwrap(), req);
    }

    #[test]
    fn response_with_unknown_fields_decodes() {
        // criu_resp { type: VERSION, success: true, version { major 3, minor 17, sublevel 1 },
        // status (field 11, not declared here): 0 }
        let bytes = [0x08, 10, 0x10, 1, 0x52, 6, 0x08, 3, 0x10, 17, 0x20, 1, 0x58, 0];
        let resp = Resp::decode(&bytes[..]).unwrap();
        assert_eq!(resp.r#type, ReqType::Version as i32);
        assert!(resp.success);
        let v = resp.version.unwrap();
        assert_eq!((v.major_number, v.minor_number, v.sublevel), (3, 17, Some(1)));
    }
}

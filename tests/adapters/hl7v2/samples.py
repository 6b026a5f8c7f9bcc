"""Realistic HL7 v2 messages from a Vietnamese hospital HIS (synthetic people, UTF-8, \\r separators)."""

from __future__ import annotations


def msg(*segments: str) -> bytes:
    """Join segments with the standard \\r terminator and encode as UTF-8."""
    return ("\r".join(segments) + "\r").encode("utf-8")


def seg(name: str, fields: dict[int, str]) -> str:
    """Build a segment from {field number: value}, so field positions are explicit and checkable."""
    top = max(fields)
    return "|".join([name] + [fields.get(n, "") for n in range(1, top + 1)])


MSH = "MSH|^~\\&|HIS_VNPT|BV_BACHMAI|LIENTHONG|SYT_HN|{ts}||{type}|{ctrl}|P|{ver}|||AL|NE|VNM|UNICODE UTF-8"


def msh(type_: str, ctrl: str, ver: str = "2.5", ts: str = "20240115083000") -> str:
    """An MSH segment from the Bạch Mai HIS."""
    return MSH.format(type=type_, ctrl=ctrl, ver=ver, ts=ts)


PID_AN = seg(
    "PID",
    {
        1: "1",
        3: "BN000123^^^BV_BACHMAI^MR~001080012345^^^BCA^NI~HN4010120012345^^^BHXH^SB^^20240101^20241231",
        5: "NGUYỄN^VĂN AN^^^^^L",
        7: "19800512",
        8: "M",
        11: "12 Phố Huế^Phường Hàng Bài^Hà Nội^Hà Nội^^VN^H^^Quận Hoàn Kiếm",
        13: "0912345678^PRN^CP",
        16: "M^Married^HL70002",
        22: "01^Kinh",
        28: "VN",
    },
)
PV1_FIELDS = {
    1: "1",
    2: "I",
    3: "K01^P101^G1^BV_BACHMAI",
    4: "R",
    7: "BS001^TRẦN^THỊ BÌNH",
    10: "K01^Khoa Nội tổng hợp",
    19: "VN2024000123",
    44: "20240115080000",
}
PV1_IN = seg("PV1", PV1_FIELDS)

ADT_A01 = msg(
    msh("ADT^A01^ADT_A01", "ADT0001"),
    "EVN|A01|20240115083000",
    PID_AN,
    PV1_IN,
    "ZPI|nội dung riêng của HIS|không ánh xạ",
)

ADT_A04 = msg(
    msh("ADT^A04^ADT_A01", "ADT0002"),
    "EVN|A04|20240116070000",
    "PID|1||BN000456^^^BV_BACHMAI^MR||TRẦN THỊ HỒNG NHUNG||19921103|F|||45 Lê Lợi^^Huế^Thừa Thiên Huế^^VN",
    seg(
        "PV1",
        {
            1: "1",
            2: "O",
            3: "KHAMBENH^^^BV_BACHMAI",
            10: "K99^Khoa Khám bệnh",
            19: "VN2024000456",
            44: "20240116070000",
        },
    ),
)

ADT_A08 = msg(
    msh("ADT^A08^ADT_A01", "ADT0003"),
    "EVN|A08|20240116100000",
    PID_AN.replace("0912345678", "0987654321"),
    PV1_IN,
)

ADT_A03 = msg(
    msh("ADT^A03^ADT_A03", "ADT0004"),
    "EVN|A03|20240120150000",
    PID_AN,
    seg("PV1", {**PV1_FIELDS, 36: "01^Ra viện", 45: "20240120150000"}),
)

ADT_A11 = msg(
    msh("ADT^A11^ADT_A09", "ADT0005"),
    "EVN|A11|20240115090000",
    PID_AN,
    PV1_IN,
)

ADT_A40 = msg(
    msh("ADT^A40^ADT_A39", "ADT0006"),
    "EVN|A40|20240121090000",
    "PID|1||BN000123^^^BV_BACHMAI^MR||NGUYỄN^VĂN AN||19800512|M",
    seg("MRG", {1: "BN009999^^^BV_BACHMAI^MR", 7: "NGUYEN^VAN AN"}),
)

ORU_R01 = msg(
    msh("ORU^R01^ORU_R01", "LAB0001"),
    PID_AN,
    PV1_IN,
    "ORC|RE|CD0001|XN0001",
    seg(
        "OBR",
        {
            1: "1",
            2: "CD0001",
            3: "XN0001",
            4: "58410-2^Tổng phân tích tế bào máu ngoại vi^LN",
            7: "20240115083000",
            22: "20240115100000",
            25: "F",
        },
    ),
    seg(
        "OBX",
        {
            1: "1",
            2: "NM",
            3: "718-7^Hemoglobin^LN",
            5: "135",
            6: "g/L^g/L^UCUM",
            7: "120-160",
            8: "N",
            11: "F",
            14: "20240115093000",
        },
    ),
    "OBX|2|NM|6690-2^Bạch cầu^LN||12.5|10*9/L^10*9/L^UCUM|4-10|H|||F",
    "OBX|3|ST|8251-1^Nhận xét^LN||Mẫu máu hơi đục\\F\\ cần lấy lại||||||F",
    "OBX|4|CWE|882-1^Nhóm máu ABO Rh^LN||278149003^Nhóm máu A Rh dương^SCT||||||F",
    "OBX|5|SN|2160-0^Creatinin^LN||<^0.5|mg/dL^mg/dL^UCUM|0.6-1.2|L|||F",
    "OBX|6|TX|11502-2^Kết luận^LN||Thiếu máu nhẹ~Theo dõi thêm||||||P",
)

VXU_V04 = msg(
    msh("VXU^V04^VXU_V04", "VAC0001", ts="20240301091500"),
    "PID|1||BN000789^^^BV_BACHMAI^MR~079224001234^^^BCA^NI||LÊ^MINH KHANG||20231201|M",
    "ORC|RE||TC0001^BV_BACHMAI",
    seg(
        "RXA",
        {
            1: "0",
            2: "1",
            3: "20240301091500",
            4: "20240301091500",
            5: "08^Viêm gan B trẻ em^CVX",
            6: "0.5",
            7: "mL^mL^UCUM",
            9: "00^Mũi mới^NIP001",
            10: "BS002^PHẠM^THU HÀ",
            15: "LOT2024A",
            16: "20251231",
            17: "SKB^Sanofi^MVX",
            20: "CP",
            21: "A",
        },
    ),
    "RXR|IM^Tiêm bắp^HL70162|LT^Đùi trái^HL70163",
)

ORM_O01 = msg(
    msh("ORM^O01^ORM_O01", "ORD0001"),
    PID_AN,
    PV1_IN,
    seg("ORC", {1: "NW", 2: "CD0002", 7: "^^^^^R", 9: "20240115084500", 12: "BS001^TRẦN^THỊ BÌNH"}),
    seg("OBR", {1: "1", 2: "CD0002", 4: "24357-6^Tổng phân tích nước tiểu^LN", 5: "R", 6: "20240115090000"}),
)

OML_O21 = msg(
    msh("OML^O21^OML_O21", "ORD0002"),
    PID_AN,
    "PV1|1|O|||||||||||||||||VN2024000999",
    seg("ORC", {1: "NW", 2: "CD0003", 5: "SC", 9: "20240115084500", 12: "BS001^TRẦN^THỊ BÌNH"}),
    "OBR|1|CD0003||2345-7^Glucose máu^LN",
    seg("SPM", {1: "1", 2: "MAU0003", 4: "BLD^Máu toàn phần^HL70487", 17: "20240115090000"}),
)

ALL_GOOD = {
    "ADT_A01": ADT_A01,
    "ADT_A04": ADT_A04,
    "ADT_A08": ADT_A08,
    "ADT_A03": ADT_A03,
    "ADT_A11": ADT_A11,
    "ADT_A40": ADT_A40,
    "ORU_R01": ORU_R01,
    "VXU_V04": VXU_V04,
    "ORM_O01": ORM_O01,
    "OML_O21": OML_O21,
}

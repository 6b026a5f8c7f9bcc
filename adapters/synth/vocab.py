"""Vocabulary for synthetic records: Vietnamese names, hospitals, real ICD-10 codes, drugs, tests.

Drug/service codes follow the DMDC shapes seen in the shared samples; they are illustrative, not a
verified national catalogue (see docs/qd130.md)."""

FAMILY = [
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Hoàng",
    "Huỳnh",
    "Phan",
    "Vũ",
    "Võ",
    "Đặng",
    "Bùi",
    "Đỗ",
    "Hồ",
    "Ngô",
    "Dương",
    "Lý",
    "Đinh",
    "Trương",
    "Mai",
    "Tạ",
]
MIDDLE_M = ["Văn", "Hữu", "Đức", "Minh", "Quốc", "Thành", "Công", "Xuân", "Gia", "Trọng"]
MIDDLE_F = ["Thị", "Ngọc", "Thu", "Thanh", "Mỹ", "Kim", "Bảo", "Hồng", "Diệu", "Khánh"]
GIVEN_M = [
    "An",
    "Bình",
    "Cường",
    "Dũng",
    "Đạt",
    "Giang",
    "Hải",
    "Hiếu",
    "Hùng",
    "Khoa",
    "Long",
    "Minh",
    "Nam",
    "Phúc",
    "Quang",
    "Sơn",
    "Tâm",
    "Thắng",
    "Tuấn",
    "Việt",
]
GIVEN_F = [
    "Anh",
    "Chi",
    "Dung",
    "Hà",
    "Hạnh",
    "Hoa",
    "Hương",
    "Lan",
    "Linh",
    "Mai",
    "Ngân",
    "Nhung",
    "Oanh",
    "Phương",
    "Quyên",
    "Thảo",
    "Trang",
    "Uyên",
    "Vy",
    "Yến",
]

# (5-digit facility code, province code of the CCCD (3 digits), province (2 digits), name, street/commune text)
HOSPITALS = [
    ("79001", "079", "79", "Bệnh viện Chợ Rẫy", "Quận 5, Thành phố Hồ Chí Minh"),
    ("01001", "001", "01", "Bệnh viện Bạch Mai", "Quận Đống Đa, Thành phố Hà Nội"),
    ("48001", "048", "48", "Bệnh viện Đà Nẵng", "Quận Hải Châu, Thành phố Đà Nẵng"),
    ("31001", "031", "31", "Bệnh viện Việt Tiệp", "Quận Lê Chân, Thành phố Hải Phòng"),
    ("92001", "092", "92", "Bệnh viện Đa khoa Trung ương Cần Thơ", "Quận Ninh Kiều, Thành phố Cần Thơ"),
    ("79002", "079", "79", "Bệnh viện Nhân dân 115", "Quận 10, Thành phố Hồ Chí Minh"),
    ("01002", "001", "01", "Bệnh viện Đa khoa Xanh Pôn", "Quận Ba Đình, Thành phố Hà Nội"),
    ("46001", "046", "46", "Bệnh viện Trung ương Huế", "Thành phố Huế, Thừa Thiên Huế"),
]
STREETS = [
    "Lê Lợi",
    "Trần Hưng Đạo",
    "Nguyễn Huệ",
    "Hai Bà Trưng",
    "Lý Thường Kiệt",
    "Điện Biên Phủ",
    "Phan Chu Trinh",
    "Quang Trung",
    "Bạch Đằng",
    "Nguyễn Trãi",
]

# (ICD-10, Vietnamese label, inpatient-worthy)
DIAGNOSES = [
    ("J00", "Viêm mũi họng cấp", False),
    ("J06.9", "Nhiễm trùng hô hấp trên cấp", False),
    ("J15.9", "Viêm phổi do vi khuẩn, không đặc hiệu", True),
    ("J18.9", "Viêm phổi, không đặc hiệu", True),
    ("I10", "Tăng huyết áp vô căn", False),
    ("E11.9", "Đái tháo đường type 2 không biến chứng", False),
    ("E78.5", "Tăng lipid máu, không đặc hiệu", False),
    ("K29.7", "Viêm dạ dày, không đặc hiệu", False),
    ("K35.8", "Viêm ruột thừa cấp khác", True),
    ("N39.0", "Nhiễm khuẩn đường tiết niệu", False),
    ("A09", "Tiêu chảy và viêm dạ dày ruột nhiễm khuẩn", True),
    ("M54.5", "Đau thắt lưng", False),
    ("J45.9", "Hen phế quản, không đặc hiệu", False),
    ("I25.1", "Bệnh tim thiếu máu cục bộ do xơ vữa", True),
    ("K21.9", "Trào ngược dạ dày thực quản", False),
    ("H10.9", "Viêm kết mạc", False),
]
SECONDARY = ["I10", "E78.5", "E11.9", "K21.9"]

# (MA_THUOC, name, strength, unit, route, dosage form, unit price, dose text per day)
DRUGS = [
    ("40.56", "Paracetamol 500mg", "500mg", "Viên", "1.01", "Viên nén", 500, "1 viên/lần * 3 lần/ngày"),
    (
        "40.226",
        "Cetirizin 10mg",
        "10mg",
        "Viên",
        "1.01",
        "Viên nén bao phim",
        1200.5,
        "1 viên/lần * 1 lần/ngày",
    ),
    ("40.151", "Amoxicilin 500mg", "500mg", "Viên", "1.01", "Viên nang", 900, "1 viên/lần * 3 lần/ngày"),
    ("40.677", "Omeprazol 20mg", "20mg", "Viên", "1.01", "Viên nang", 1500, "1 viên/lần * 2 lần/ngày"),
    ("40.427", "Metformin 500mg", "500mg", "Viên", "1.01", "Viên nén", 700, "1 viên/lần * 2 lần/ngày"),
    ("40.395", "Amlodipin 5mg", "5mg", "Viên", "1.01", "Viên nén", 800, "1 viên/lần * 1 lần/ngày"),
    ("40.52", "Ceftriaxon 1g", "1g", "Lọ", "2.15", "Bột pha tiêm", 25000, "1 lọ/lần * 2 lần/ngày"),
    (
        "40.1005",
        "Natri clorid 0,9% 500ml",
        "0,9%",
        "Chai",
        "2.15",
        "Dung dịch tiêm truyền",
        9800,
        "1 chai/lần * 1 lần/ngày",
    ),
]
# Lab panels: (service code, name, price, [(MA_CHI_SO, name, unit, low, high, decimals)])
LABS = [
    (
        "23.0166.1494",
        "Tổng phân tích tế bào máu ngoại vi (bằng máy đếm laser)",
        46200,
        [
            ("WBC", "Số lượng bạch cầu", "G/L", 4.0, 16.0, 1),
            ("HGB", "Lượng huyết sắc tố", "g/L", 100, 165, 0),
            ("PLT", "Số lượng tiểu cầu", "G/L", 150, 400, 0),
        ],
    ),
    ("23.0075.1494", "Định lượng Glucose [Máu]", 21500, [("GLU", "Glucose", "mmol/L", 3.9, 12.0, 1)]),
    ("23.0051.1494", "Định lượng Creatinin [Máu]", 21500, [("CRE", "Creatinin", "umol/L", 50, 140, 0)]),
    ("23.0020.1494", "Đo hoạt độ ALT (GPT) [Máu]", 21500, [("ALT", "ALT (GPT)", "U/L", 10, 80, 0)]),
]
IMAGING = ("18.0119.0028", "Chụp X-quang ngực thẳng", 65400)
EXAM = ("02.1896", "Khám Nội", 42100)
BED = ("K03.1919", "Ngày giường bệnh Nội khoa loại 1", 200000)
SUPPLY = ("N03.05.010.0000.000.0001", "Bơm tiêm nhựa 5ml", 1000)

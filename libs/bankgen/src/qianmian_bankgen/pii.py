"""Synthetic personal identifiers that pass real validators (ID check digit, Luhn), built vectorised.

They exist so that the profile service can prove it masks and never forwards them; nothing here
corresponds to a real person.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

_SURNAMES: Final = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董潘袁蔡蒋余"
    "于杜叶程魏苏吕丁任卢姚沈钟姜崔谭陆范汪廖石金韦贾夏付方邹熊白孟秦邱侯江尹薛闫段雷"
    "龙黎史陶贺毛郝顾龚邵万覃武钱戴严欧莫孔向常汤"
)
_GIVEN: Final = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉建国志文斌宇浩凯俊婷"
    "雪琳欣怡晨阳佳慧思源梓涵子轩睿博嘉乐晓云海波燕丹宁彤颖诗雨"
)

#: Six-digit administrative division codes by province (a few prefectures each).
DIVISION_CODES: Final[dict[str, tuple[int, ...]]] = {
    "GD": (440103, 440106, 440304, 440305, 440604, 441302, 441900, 442000, 440402, 440511),
    "GX": (450102, 450202, 450304),
    "FJ": (350102, 350203, 350503),
    "HN": (430102, 430203, 430304),
    "JX": (360102, 360203),
    "HA": (410102, 410305),
    "SC": (510104, 510107),
    "ZJ": (330102, 330203),
    "JS": (320102, 320505),
    "SH": (310101, 310115),
    "BJ": (110101, 110105),
    "HB": (420102, 420111),
}

_ID_WEIGHTS: Final = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_ID_CHECK: Final = np.frombuffer(b"10X98765432", dtype=np.uint8)
_MOBILE_PREFIXES: Final = np.array(
    [130, 131, 132, 133, 135, 136, 137, 138, 139, 150, 151, 152, 155, 157, 158, 159, 166, 176, 177, 180,
     181, 182, 183, 185, 186, 187, 188, 189, 191, 198, 199],
    dtype=np.int64,
)  # fmt: skip
_CARD_BINS: Final = np.array([621483, 622588, 621700, 622202, 623668, 622848], dtype=np.int64)


def digits_of(numbers: NDArray[np.int64], width: int) -> NDArray[np.uint8]:
    """``[n × width]`` decimal digits of non-negative integers, most significant first."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((numbers[:, None] // powers) % 10).astype(np.uint8)


def ascii_strings(chars: NDArray[np.uint8]) -> pa.StringArray:
    """An Arrow string array from an ``[n × width]`` matrix of ASCII codes, without Python objects."""
    n, width = chars.shape
    offsets = (np.arange(n + 1, dtype=np.int32) * width).astype(np.int32)
    data = np.ascontiguousarray(chars, dtype=np.uint8).ravel()
    array = pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    assert isinstance(array, pa.StringArray)
    return array


def id_strings(prefix: str, numbers: NDArray[np.int64], width: int) -> pa.StringArray:
    """Zero-padded identifiers such as ``C000000042`` (prefix + ``width`` digits)."""
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    chars = np.concatenate(
        [np.broadcast_to(head, (numbers.shape[0], head.shape[0])), digits_of(numbers, width) + 48], axis=1
    )
    return ascii_strings(chars)


def id_check_char(first17: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """GB 11643 (ISO 7064 MOD 11-2) check character, as ASCII, for rows of 17 digits."""
    return np.asarray(_ID_CHECK[(first17.astype(np.int64) @ _ID_WEIGHTS) % 11], dtype=np.uint8)


def luhn_check_digit(body: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Luhn check digit (0-9) for rows of digits that the check digit will be appended to."""
    d = body.astype(np.int64)[:, ::-1]
    doubled = d[:, 0::2] * 2
    total = (doubled - 9 * (doubled > 9)).sum(axis=1) + d[:, 1::2].sum(axis=1)
    return np.asarray((10 - total % 10) % 10, dtype=np.uint8)


def generate_pii(
    rng: np.random.Generator,
    regions: NDArray[np.str_],
    birth: NDArray[np.datetime64],
    is_male: NDArray[np.bool_],
) -> dict[str, pa.Array]:
    """Name, mobile, resident id and debit card number for each customer.

    The id number encodes the customer's province, birth date and gender exactly as a real one
    does, so masking code and validators can be tested against realistic input.
    """
    n = regions.shape[0]
    surnames = pa.array(list(_SURNAMES))
    given = pa.array(list(_GIVEN))
    first = given.take(pa.array(rng.integers(0, len(_GIVEN), n)))
    second = given.take(pa.array(rng.integers(0, len(_GIVEN), n)))
    # About a third of names have a single-character given name.
    second = pc.if_else(pa.array(rng.random(n) < 0.33), pa.scalar(""), second)
    names = pc.binary_join_element_wise(
        surnames.take(pa.array(rng.integers(0, len(_SURNAMES), n))), first, second, ""
    )

    mobile = _MOBILE_PREFIXES[rng.integers(0, _MOBILE_PREFIXES.shape[0], n)] * 10**8 + rng.integers(
        0, 10**8, n
    )

    division = np.zeros(n, dtype=np.int64)
    for region, codes in DIVISION_CODES.items():
        rows = np.flatnonzero(regions == region)
        division[rows] = np.asarray(codes, dtype=np.int64)[rng.integers(0, len(codes), rows.shape[0])]
    ymd = birth.astype("datetime64[D]").astype(str)
    birth_num = np.char.replace(ymd, "-", "").astype(np.int64)
    sequence = rng.integers(0, 500, n) * 2 + is_male.astype(np.int64)  # odd = male, even = female
    first17 = np.concatenate(
        [digits_of(division, 6), digits_of(birth_num, 8), digits_of(sequence, 3)], axis=1
    )
    id_chars = np.concatenate([first17 + 48, id_check_char(first17)[:, None]], axis=1)

    bins = np.asarray(_CARD_BINS[rng.integers(0, _CARD_BINS.shape[0], n)], dtype=np.int64)
    account = np.asarray(rng.integers(0, 10**12, n), dtype=np.int64)
    card_body = np.concatenate([digits_of(bins, 6), digits_of(account, 12)], axis=1)
    card_chars = np.concatenate([card_body, luhn_check_digit(card_body)[:, None]], axis=1) + 48

    return {
        "name": names,
        "mobile": ascii_strings(digits_of(mobile, 11) + 48),
        "id_number": ascii_strings(id_chars.astype(np.uint8)),
        "card_number": ascii_strings(card_chars.astype(np.uint8)),
    }

"""The master file: the card's root DF, above every application (ISO/IEC 7816-4 5.3, 7.1.1).

Terminals select the band's applications by AID (P1 04). Older PBOC
terminals, reader apps and opensc's drivers walk the file tree instead: the
MF 3F00, then the application's DF by its file identifier (1001 on T-Union
and Beijing cards), then an EF (0015, the issuer file). Here the MF is the
card's, not any application's: an application with a file identifier
(:attr:`applets.runtime.Applet.file_id`) is a DF under it, and the MF itself
holds no EF. Selecting the MF deselects the current application.

=====  ===============================  ==============================================
P1     data                             selects
=====  ===============================  ==============================================
00     none, or 3F00                    the MF
00     FID                              an EF of the current DF, else a DF under the MF
                                        (the current DF itself, a sibling, a child)
01     FID                              a DF under the MF, from the MF
02     FID                              an EF of the current DF
03     none                             the parent DF: the MF
08     path from the MF (3F00 omitted)  a DF, or a DF then one of its EFs
09     path from the current DF         one of its EFs (from the MF: as 08)
=====  ===============================  ==============================================

A file that is not there is 6A82 and nothing changes; what is selected
answers as P2 b4-b3 asks (:func:`applets.selection.control_information`). The
rules are here, apart from the runtime, so that they read as one table and
can be tested without a card: :func:`resolve` says what a SELECT reaches and
the runtime makes it current.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from applets.errors import CardError
from applets.selection import MF_FID, Answer, SelectBy, SelectFile, control_information, df_control_parameters
from applets.sw import SW

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Target(Generic[T]):
    """What a SELECT reaches: the MF (``df`` None) or an application's DF, and in the DF
    the EF ``ef`` (None: the DF itself)."""

    df: T | None
    ef: int | None = None


def resolve(select: SelectFile, current: T | None, dfs: Mapping[int, T],
            has_ef: Callable[[T, int], bool]) -> Target[T]:
    """The file ``select`` names, seen from ``current`` (the selected application, None at
    the MF): ``dfs`` are the applications that may be selected now by their DF's file
    identifier, ``has_ef(df, fid)`` whether a DF holds that EF. 6A82 if nothing matches."""
    by, path = select.by, select.path
    if select.is_mf:
        return Target(None)
    if by == SelectBy.PARENT_DF:
        if current is None:
            raise CardError(SW.FILE_NOT_FOUND, "the MF has no parent")
        return Target(None)
    if by == SelectBy.PATH_FROM_MF or (by == SelectBy.PATH_FROM_CURRENT_DF and current is None):
        if path[0] == MF_FID:  # opensc and others send the MF's identifier anyway
            path = path[1:]
        if not path:
            return Target(None)
        return _in_df(_df(dfs, path[0]), path[1:], has_ef)
    fid = path[0]
    if by == SelectBy.PATH_FROM_CURRENT_DF and current is not None:
        return _in_df(current, path, has_ef)
    if (by in (SelectBy.FILE_ID, SelectBy.EF_UNDER_CURRENT_DF) and current is not None
            and has_ef(current, fid)):
        return Target(current, fid)
    if by == SelectBy.FILE_ID or (by == SelectBy.CHILD_DF and current is None):
        return Target(_df(dfs, fid))
    raise CardError(SW.FILE_NOT_FOUND, f"no file {fid:04X} here")


def _df(dfs: Mapping[int, T], fid: int) -> T:
    found = dfs.get(fid)
    if found is None:
        raise CardError(SW.FILE_NOT_FOUND, f"no DF {fid:04X} under the MF")
    return found


def _in_df(df: T, rest: tuple[int, ...], has_ef: Callable[[T, int], bool]) -> Target[T]:
    if not rest:
        return Target(df)
    if len(rest) > 1 or not has_ef(df, rest[0]):
        raise CardError(SW.FILE_NOT_FOUND, f"no file {''.join(f'{f:04X}' for f in rest)} in "
                                           f"the DF")
    return Target(df, rest[0])


def answer(requested: Answer) -> bytes:
    """What the MF answers SELECT with: a DF with identifier 3F00 and no name, no FMD."""
    return control_information(requested, df_control_parameters(MF_FID))

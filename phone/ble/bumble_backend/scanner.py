"""bleak's scanner on a Bumble device: advertisements as bleak reports them on any OS."""

from __future__ import annotations

from typing import Any, Literal

from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.uuids import normalize_uuid_str
from bumble.core import UUID, AdvertisingData
from bumble.device import Advertisement, Device

from phone.ble.bumble_backend.stack import BumbleStack


def bleak_uuid(uuid: UUID) -> str:
    """A Bumble UUID as bleak writes every UUID: 128 bits, lower case."""
    return normalize_uuid_str(uuid.to_hex_str("-"))


def advertisement_data(advertisement: Advertisement) -> AdvertisementData:
    """What bleak's scanners report of one advertising report (or scan response)."""
    data, kind = advertisement.data, AdvertisingData.Type
    names = (data.get(kind.COMPLETE_LOCAL_NAME) or data.get(kind.SHORTENED_LOCAL_NAME))
    tx_power = data.get(kind.TX_POWER_LEVEL)
    listed = [*data.get_all(kind.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS),
              *data.get_all(kind.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS),
              *data.get_all(kind.COMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS),
              *data.get_all(kind.INCOMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS),
              *data.get_all(kind.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS),
              *data.get_all(kind.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS)]
    service_data = [*data.get_all(kind.SERVICE_DATA_16_BIT_UUID),
                    *data.get_all(kind.SERVICE_DATA_32_BIT_UUID),
                    *data.get_all(kind.SERVICE_DATA_128_BIT_UUID)]
    return AdvertisementData(
        local_name=names if isinstance(names, str) else None,
        manufacturer_data=dict(data.get_all(kind.MANUFACTURER_SPECIFIC_DATA)),
        service_data={bleak_uuid(uuid): value for uuid, value in service_data},
        service_uuids=[bleak_uuid(uuid) for uuids in listed for uuid in uuids],
        tx_power=tx_power if isinstance(tx_power, int) else None,
        rssi=advertisement.rssi,
        platform_data=(advertisement,),
    )


class BumbleScanner(BaseBleakScanner):
    """``BleakScanner(backend=BumbleScanner, bumble=stack)``: scans on the stack's device.

    A found device's ``details`` is its Bumble address (with its type), which
    :class:`~phone.ble.bumble_backend.client.BumbleClient` connects to.
    """

    def __init__(self, detection_callback: AdvertisementDataCallback | None,
                 service_uuids: list[str] | None,
                 scanning_mode: Literal["active", "passive"] = "active", *,
                 bumble: BumbleStack, **_other_backends: Any) -> None:
        super().__init__(detection_callback, service_uuids)
        self._device = bumble.device
        self._active = scanning_mode == "active"

    async def start(self) -> None:
        self.seen_devices = {}
        self._device.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        await self._device.start_scanning(active=self._active, filter_duplicates=False)

    async def stop(self) -> None:
        self._device.remove_listener(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        await self._device.stop_scanning()

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        data = advertisement_data(advertisement)
        if not self.is_allowed_uuid(data.service_uuids):
            return
        address = advertisement.address
        device = self.create_or_update_device(str(address), address.to_string(False),
                                              data.local_name, address, data)
        self.call_detection_callbacks(device, data)
